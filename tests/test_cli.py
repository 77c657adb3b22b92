"""The `scaler` command: validate and replay, their outputs and their exit codes.

Most cases call ``scaler.cli.main(argv)`` in-process (an uncaught exception fails the test,
so "no traceback" is checked by construction); two run the installed console script.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scaler.cli import main
from scaler.policy import format_duration

REPO = Path(__file__).resolve().parent.parent
SCALER = Path(sys.executable).parent / "scaler"
T0 = 1772409600  # 2026-03-02T00:00:00Z, even, so ticks fall on T0 + 2k

DECISION_COLUMNS = ["timestamp", "stable", "panic", "desired_replicas", "ready_replicas",
                    "in_panic"]
SUMMARY_KEYS = ["duration_seconds", "ticks", "pod_seconds", "under_provisioned_demand_seconds",
                "under_provisioned_share", "cold_start_episodes", "cold_start_seconds",
                "scaling_actions", "panic_seconds", "peak_replicas"]
TABLE_ROWS = ["duration", "pod-seconds", "under-provisioned", "cold starts", "scaling actions",
              "time in panic"]


def document(name: str, **spec) -> dict:
    body = {"scaleTargetRef": {"name": name}, "metric": {"query": f"sum(inflight_{name})"}}
    body.update(spec)
    return {"apiVersion": "scaler/v1", "kind": "ScalingPolicy", "metadata": {"name": name},
            "spec": body}


def write_policies(path: Path, *docs: dict) -> Path:
    path.write_text(yaml.safe_dump_all(list(docs), sort_keys=False))
    return path


def burst_recording(path: Path) -> Path:
    """2 minutes: 30 s at 20, a 30 s burst at 300 (panic), 60 s idle."""
    rows = [f"{T0 + i},{20 if i < 30 else 300 if i < 60 else 0}" for i in range(120)]
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    return path


def read_decisions(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (recursively, hidden ones too) with its bytes."""
    return {str(p.relative_to(directory)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(directory.rglob("*"))}


# ------------------------------------------------------------------------------ validate

def test_validate_prints_one_line_per_policy(tmp_path, capsys):
    write_policies(tmp_path / "a.yaml", document("alpha"), document("beta", maxReplicas=9))
    write_policies(tmp_path / "b.yml", document("gamma", metric={"type": "rps", "query": "q"}))
    assert main(["validate", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 3, out
    assert [line.split(":")[0] for line in lines] == ["alpha", "beta", "gamma"]
    assert "replicas 0..9" in lines[1]
    assert "rps target 140 per replica" in lines[2]
    assert err == ""


def test_validate_the_example_policy(capsys):
    assert main(["validate", str(REPO / "policies" / "default.yaml")]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith("default: Deployment default/app")


def test_validate_prints_every_error_and_exits_2(tmp_path, capsys):
    bad = document("alpha", target=0, stableWindow="90")
    bad["spec"]["cooldown"] = "1m"
    write_policies(tmp_path / "a.yaml", bad, document("beta", minReplicas=1.5))
    write_policies(tmp_path / "b.yaml", document("gamma", tickInterval="0s"))
    assert main(["validate", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 5, err
    assert all(line.startswith("error: ") for line in lines)
    expected = [(tmp_path / "a.yaml", "document 1", "spec.target"),
                (tmp_path / "a.yaml", "document 1", "spec.stableWindow"),
                (tmp_path / "a.yaml", "document 1", "spec.cooldown"),
                (tmp_path / "a.yaml", "document 2", "spec.minReplicas"),
                (tmp_path / "b.yaml", "document 1", "spec.tickInterval")]
    for file, doc, key in expected:
        assert any(f"{file}: {doc}" in line and f"{key}: " in line for line in lines), \
            (file, doc, key, err)


def test_validate_invalid_yaml_names_the_line(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text("apiVersion: scaler/v1\nkind: ScalingPolicy\nmetadata:\n  name: [a\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "not valid YAML" in err and " line " in err


def test_validate_missing_path(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_validate_duplicate_names_across_files(tmp_path, capsys):
    write_policies(tmp_path / "a.yaml", document("web"))
    other = document("web")
    other["spec"]["scaleTargetRef"]["name"] = "other"
    write_policies(tmp_path / "b.yaml", other)
    assert main(["validate", str(tmp_path)]) == 2
    assert "'web' is already used" in capsys.readouterr().err


def test_validate_console_script(tmp_path):
    """The installed `scaler` command, end to end."""
    write_policies(tmp_path / "a.yaml", document("alpha", target=-1))
    bad = subprocess.run([str(SCALER), "validate", str(tmp_path)], check=False,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert "spec.target" in bad.stderr and "Traceback" not in bad.stderr
    write_policies(tmp_path / "a.yaml", document("alpha"))
    good = subprocess.run([str(SCALER), "validate", str(tmp_path)], check=False,
                          capture_output=True, text=True, timeout=60)
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith("alpha: ")


def test_no_command_exits_2(capsys):
    assert main([]) == 2
    assert "validate" in capsys.readouterr().out


# -------------------------------------------------------------------------------- replay

def test_replay_writes_decisions_summary_chart_and_table(tmp_path, capsys):
    recording = burst_recording(tmp_path / "burst.csv")
    out_dir = tmp_path / "out"
    code = main(["replay", str(recording), "--out", str(out_dir), "--startup-delay", "3"])
    stdout = capsys.readouterr().out
    assert code == 0

    assert sorted(p.name for p in out_dir.iterdir()) == ["chart.png", "decisions.csv",
                                                         "summary.json"]
    assert (out_dir / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    header, rows = read_decisions(out_dir / "decisions.csv")
    for column in DECISION_COLUMNS:
        assert column in header
    assert [int(r["timestamp"]) for r in rows] == [T0 + 2 * k for k in range(60)]
    assert {r["in_panic"] for r in rows} == {"0", "1"}
    assert rows[0]["stable"] == "20" and rows[0]["desired_replicas"] == "1"
    desired = [int(r["desired_replicas"]) for r in rows]
    ready = [int(r["ready_replicas"]) for r in rows]
    panic_ticks = sum(r["in_panic"] == "1" for r in rows)
    assert max(desired) > 1, "a 300-concurrency burst needs more than one replica"
    assert min(ready) >= 0

    summary = json.loads((out_dir / "summary.json").read_text())
    for key in SUMMARY_KEYS:
        assert key in summary, key
    assert summary["ticks"] == len(rows) == 60
    assert summary["duration_seconds"] == 120
    assert summary["pod_seconds"] == sum(desired) * 2
    assert summary["peak_replicas"] == max(desired)
    assert summary["panic_seconds"] == panic_ticks * 2 > 0
    changes = sum(a != b for a, b in zip([1] + desired, desired))
    assert summary["scaling_actions"] == changes > 0
    assert summary["under_provisioned_demand_seconds"] > 0
    assert 0 < summary["under_provisioned_share"] < 1
    assert summary["startup_delay_seconds"] == 3
    assert summary["policy"] == "default"

    assert "scaler replay: burst.csv with policy default" in stdout
    lines = stdout.splitlines()
    for row in TABLE_ROWS:
        assert any(line.startswith(row) for line in lines), (row, stdout)
    [pod_line] = [line for line in lines if line.startswith("pod-seconds")]
    assert f"{summary['pod_seconds']:,.0f}" in pod_line
    assert f"peak {summary['peak_replicas']}" in pod_line
    [panic_line] = [line for line in lines if line.startswith("time in panic")]
    assert panic_line.endswith(format_duration(summary["panic_seconds"]))
    assert "decisions.csv" in stdout and "summary.json" in stdout


def test_replay_no_chart(tmp_path, capsys):
    out_dir = tmp_path / "out"
    assert main(["replay", str(burst_recording(tmp_path / "r.csv")), "--out", str(out_dir),
                 "--no-chart"]) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["decisions.csv", "summary.json"]


def test_replay_leaves_no_staging_files(tmp_path, capsys):
    out_dir = tmp_path / "out"
    assert main(["replay", str(burst_recording(tmp_path / "r.csv")), "--out", str(out_dir),
                 "--no-chart"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "r.csv"]


def test_replay_column_picks_one(tmp_path, capsys):
    path = tmp_path / "two.csv"
    path.write_text("timestamp,rps,inflight\n"
                    + "".join(f"{T0 + i},{1000},{140}\n" for i in range(20)))
    out_dir = tmp_path / "out"
    assert main(["replay", str(path), "--column", "inflight", "--out", str(out_dir),
                 "--no-chart"]) == 0
    _, rows = read_decisions(out_dir / "decisions.csv")
    assert rows[0]["stable"] == "140"


@pytest.mark.parametrize(("content", "name", "fragments"), [
    pytest.param("timestamp,value\n" f"{T0},1\n{T0 + 1},2\n{T0 + 2},-3\n", "r.csv",
                 ["line 4", "negative"], id="negative-value"),
    pytest.param("timestamp,value\n" f"{T0},1\n{T0 + 1},nan\n", "r.csv", ["line 3", "NaN"],
                 id="nan"),
    pytest.param("timestamp,value\n" f"{T0},1\nyesterday,2\n", "r.csv",
                 ["line 3", "'yesterday'"], id="unparsable-timestamp"),
    pytest.param("timestamp,value\n" f"{T0 + 5},1\n{T0},2\n", "r.csv", ["line 3", "earlier"],
                 id="unsorted"),
    pytest.param("", "r.csv", ["empty recording"], id="empty"),
    pytest.param("timestamp,a,b\n" f"{T0},1,2\n", "r.csv", ["--column"],
                 id="several-columns"),
    pytest.param(json.dumps({"data": {"result": [
        {"metric": {"pod": "a"}, "values": [[T0, "1"]]},
        {"metric": {"pod": "b"}, "values": [[T0, "1"]]}]}}), "r.json",
        ['{pod="a"}', '{pod="b"}'], id="json-two-series"),
    pytest.param(json.dumps({"data": "none"}), "r.json", ["query_range"],
                 id="json-data-not-a-mapping"),
    pytest.param("timestamp,value\n" f"{T0 + 1},5\n", "r.csv", ["less than one tick"],
                 id="shorter-than-a-tick"),
])
def test_bad_recording_exits_2_and_writes_nothing(tmp_path, capsys, content, name, fragments):
    recording = tmp_path / "in" / name
    recording.parent.mkdir()
    recording.write_text(content)
    work = tmp_path / "work"
    work.mkdir()
    out_dir = work / "fresh" / "out"
    assert main(["replay", str(recording), "--out", str(out_dir)]) == 2
    _, err = capsys.readouterr()
    assert err.startswith("error: ")
    for fragment in fragments:
        assert fragment in err, err
    assert "Traceback" not in err
    assert list(work.iterdir()) == [], "nothing may be created when DIR did not exist"


def test_bad_recording_leaves_previous_outputs_untouched(tmp_path, capsys):
    out_dir = tmp_path / "out"
    assert main(["replay", str(burst_recording(tmp_path / "good.csv")), "--out",
                 str(out_dir)]) == 0
    before = snapshot(tmp_path)
    assert {"out/decisions.csv", "out/summary.json", "out/chart.png"} <= set(before)
    capsys.readouterr()

    bad = tmp_path / "bad.csv"
    bad.write_text(f"timestamp,value\n{T0},1\n{T0 + 1},-1\n")
    before = snapshot(tmp_path)
    assert main(["replay", str(bad), "--out", str(out_dir)]) == 2
    assert "line 3" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_bad_recording_console_script_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(f"timestamp,value\n{T0},1\n{T0 + 1},2\n{T0 + 2},x\n")
    result = subprocess.run([str(SCALER), "replay", str(bad), "--out", str(tmp_path / "o")],
                            check=False, capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)
    assert result.returncode == 2
    assert "line 4" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_bad_policy_exits_2_and_writes_nothing(tmp_path, capsys):
    policy = write_policies(tmp_path / "p.yaml", document("web", stableWindow="1s"))
    recording = burst_recording(tmp_path / "r.csv")
    assert main(["replay", str(recording), "--policy", str(policy), "--out",
                 str(tmp_path / "out")]) == 2
    assert "spec.stableWindow" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_negative_startup_delay_exits_2(tmp_path, capsys):
    recording = burst_recording(tmp_path / "r.csv")
    assert main(["replay", str(recording), "--startup-delay", "-1", "--out",
                 str(tmp_path / "out")]) == 2
    assert "--startup-delay" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------ choosing policy

@pytest.fixture
def two_policies(tmp_path: Path) -> Path:
    return write_policies(tmp_path / "p.yaml", document("fast", target=10),
                          document("slow", target=1000))


@pytest.mark.parametrize(("name", "peak_above_one"), [
    pytest.param("fast", True, id="fast"),
    pytest.param("slow", False, id="slow"),
])
def test_name_selects_among_several(tmp_path, capsys, two_policies, name, peak_above_one):
    out_dir = tmp_path / "out"
    assert main(["replay", str(burst_recording(tmp_path / "r.csv")), "--policy",
                 str(two_policies), "--name", name, "--out", str(out_dir), "--no-chart"]) == 0
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["policy"] == name
    assert (summary["peak_replicas"] > 1) is peak_above_one
    assert f"with policy {name}" in capsys.readouterr().out


def test_name_selects_in_a_directory(tmp_path, capsys):
    policies = tmp_path / "policies"
    policies.mkdir()
    write_policies(policies / "a.yaml", document("fast", target=10))
    write_policies(policies / "b.yaml", document("slow", target=1000))
    out_dir = tmp_path / "out"
    assert main(["replay", str(burst_recording(tmp_path / "r.csv")), "--policy", str(policies),
                 "--name", "slow", "--out", str(out_dir), "--no-chart"]) == 0
    assert json.loads((out_dir / "summary.json").read_text())["policy"] == "slow"


def test_several_policies_without_name_exits_2(tmp_path, capsys, two_policies):
    out_dir = tmp_path / "out"
    assert main(["replay", str(burst_recording(tmp_path / "r.csv")), "--policy",
                 str(two_policies), "--out", str(out_dir)]) == 2
    err = capsys.readouterr().err
    assert "--name" in err and "fast" in err and "slow" in err
    assert not out_dir.exists()


def test_unknown_name_exits_2(tmp_path, capsys, two_policies):
    out_dir = tmp_path / "out"
    assert main(["replay", str(burst_recording(tmp_path / "r.csv")), "--policy",
                 str(two_policies), "--name", "medium", "--out", str(out_dir)]) == 2
    assert "no policy named 'medium'" in capsys.readouterr().err
    assert not out_dir.exists()


def test_single_policy_needs_no_name(tmp_path, capsys):
    policy = write_policies(tmp_path / "p.yaml", document("only", target=50))
    out_dir = tmp_path / "out"
    assert main(["replay", str(burst_recording(tmp_path / "r.csv")), "--policy", str(policy),
                 "--out", str(out_dir), "--no-chart"]) == 0
    assert json.loads((out_dir / "summary.json").read_text())["policy"] == "only"


# -------------------------------------------------------------------------- the defaults

def test_replay_without_arguments_uses_the_bundled_recording(tmp_path, monkeypatch, capsys):
    assert (REPO / "scaler" / "recordings" / "default.csv").is_file(), \
        "the bundled default recording is missing"
    monkeypatch.chdir(tmp_path)
    assert main(["replay"]) == 0
    out = capsys.readouterr().out
    assert "scaler replay: default.csv with policy default" in out
    out_dir = tmp_path / "replay-out"
    assert sorted(p.name for p in out_dir.iterdir()) == ["chart.png", "decisions.csv",
                                                         "summary.json"]
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["policy"] == "default"
    assert summary["recording"]["path"].endswith("recordings/default.csv")
    assert summary["panic_seconds"] > 0
    _, rows = read_decisions(out_dir / "decisions.csv")
    assert summary["ticks"] == len(rows)
    scaled_to_zero = any(r["desired_replicas"] == "0" for r in rows)
    assert summary["cold_start_episodes"] >= 1 or scaled_to_zero
    # And the workload comes back after it went to zero.
    if scaled_to_zero:
        first_zero = next(i for i, r in enumerate(rows) if r["desired_replicas"] == "0")
        assert any(int(r["desired_replicas"]) > 0 for r in rows[first_zero:])


def test_replay_default_recording_with_startup_delay_has_a_cold_start(tmp_path, capsys):
    out_dir = tmp_path / "out"
    assert main(["replay", "--startup-delay", "5", "--out", str(out_dir), "--no-chart"]) == 0
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["cold_start_episodes"] >= 1
    assert summary["cold_start_seconds"] >= 1
