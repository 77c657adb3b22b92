"""``scaler tune``: --vary and --pick parsing, the Pareto front, the pick, and the command
end to end — every variant's figures are exactly what ``scaler replay`` gives for it, in
one process or several, and bad input is the validator's one-line error, exit 2, before
anything runs or is written."""

from __future__ import annotations

import csv
import textwrap

import pytest
import yaml

from scaler import cli
from scaler.policy import parse_policies
from scaler.replay.engine import replay
from scaler.replay.report.summary import summarize
from scaler.replay.tune import (
    DEFAULT_OBJECTIVE,
    FIGURES,
    Knob,
    Limit,
    Objective,
    TuneError,
    pareto_front,
    parse_objective,
    parse_vary,
)
from scaler.sources.recording import load

RECORDING = "scaler/recordings/default.csv"
HEAD = """\
apiVersion: scaler/v1
kind: ScalingPolicy
metadata: {name: web}
spec:
  scaleTargetRef: {name: web}
  metric: {query: sum(web_inflight)}
"""


# ------------------------------------------------------------------------------ --vary

@pytest.mark.parametrize("text, knob", [
    ("stableWindow=30s,60s", Knob("stableWindow", ("30s", "60s"))),
    ("spec.targetUtilizationPercentage=60,70.5", Knob("targetUtilizationPercentage",
                                                      (60, 70.5))),
    ("stableWindow=30s..120s/30s", Knob("stableWindow", ("30s", "1m", "1m30s", "2m"))),
    ("stableWindow=30s..100s/30s", Knob("stableWindow", ("30s", "1m", "1m30s"))),
    ("targetUtilizationPercentage=50..80/10",
     Knob("targetUtilizationPercentage", (50, 60, 70, 80))),
    ("maxScaleDownRate=1.5..2.5/0.5", Knob("maxScaleDownRate", (1.5, 2.0, 2.5))),
    ("prediction.maxExtraCost=5%..15%/5%", Knob("prediction.maxExtraCost",
                                                ("5%", "10%", "15%"))),
    ("prediction.enabled=true,false", Knob("prediction.enabled", (True, False))),
    ("scaleToZero.keepAlive=fixed,histogram", Knob("scaleToZero.keepAlive",
                                                   ("fixed", "histogram"))),
    ("scaleToZero.prewarmLead=0s..30s/10s", Knob("scaleToZero.prewarmLead",
                                                 ("0s", "10s", "20s", "30s"))),
], ids=lambda x: x if isinstance(x, str) else None)
def test_vary_values_and_ranges(text, knob):
    assert parse_vary(text) == knob


@pytest.mark.parametrize("text, fragment", [
    ("stableWindow", "expected KEY=V1,V2,... or KEY=A..B/STEP"),
    ("stableWindo=30s", "--vary stableWindo: not a policy key (did you mean stableWindow?)"),
    ("prediction.horizn=30s", "did you mean prediction.horizon?"),
    ("metric.query=x", "not a tuning knob"),
    ("stableWindow=30s..60s", "a range needs a step"),
    ("stableWindow=60s..30s/10s", "needs A <= B and a step > 0"),
    ("stableWindow=30s..1m/0s", "needs A <= B and a step > 0"),
    ("prediction.maxExtraCost=5%..10/1", "must all be numbers, all percentages or all "
                                         "durations"),
    ("stableWindow=30s,,60s", "an empty value"),
    ("stableWindow=30s,30s", "a value is listed twice"),
    ("stableWindow=1s..100000s/1s", "at most 10,000"),
])
def test_bad_vary_names_the_option_and_the_value(text, fragment):
    with pytest.raises(TuneError) as exc:
        parse_vary(text)
    assert fragment in str(exc.value)


# ------------------------------------------------------------------------------ --pick

def fig(pods: float, unserved: float, cold: int, demand: float = 1000.0) -> dict:
    return {"pod_seconds": pods, "under_provisioned_demand_seconds": unserved,
            "cold_start_episodes": cold, "demand_seconds": demand}


def test_objective_grammar():
    assert parse_objective(DEFAULT_OBJECTIVE) == Objective(
        "pod-seconds", (Limit("unserved", 1.0, "x"), Limit("cold-starts", 1.0, "x")))
    assert parse_objective("least-unserved:pod-seconds<=1.1x") == Objective(
        "unserved", (Limit("pod-seconds", 1.1, "x"),))
    assert parse_objective("least-cold-starts") == Objective("cold-starts", ())
    assert str(parse_objective("least-pod-seconds: unserved <= 1%")) == (
        "least-pod-seconds:unserved<=1%")


@pytest.mark.parametrize("text, fragment", [
    ("cheapest", "starts with least-METRIC"),
    ("least-cost", "starts with least-METRIC"),
    ("least-pod-seconds:unserved<1%", "is not METRIC<=VALUE"),
    ("least-pod-seconds:latency<=2", "is not METRIC<=VALUE"),
    ("least-unserved:pod-seconds<=10%", "N% is a share of the demand, for unserved only"),
])
def test_bad_objectives(text, fragment):
    with pytest.raises(TuneError) as exc:
        parse_objective(text)
    assert fragment in str(exc.value)


FIGS = [fig(100, 50, 3), fig(90, 80, 3), fig(120, 10, 1), fig(95, 80, 4), fig(100, 50, 3),
        fig(130, 10, 2)]


def test_pareto_front_keeps_what_nothing_beats_on_all_three():
    # 3 is beaten by 1 (cheaper, same unserved, fewer cold starts); 5 by 2; 0 and 4 tie
    # (neither beats the other), so both stay
    assert pareto_front(FIGS) == [0, 1, 2, 4]


@pytest.mark.parametrize("objective, current, want", [
    ("least-pod-seconds", 0, 1),
    ("least-pod-seconds:unserved<=1x", 0, 0),          # ties with 4: the earlier one
    ("least-pod-seconds:unserved<=5%", 0, 0),          # 50 of 1,000 demand-s
    ("least-pod-seconds:unserved<=4.9%", 0, 2),
    ("least-pod-seconds:unserved<=20,cold-starts<=1", 0, 2),
    ("least-unserved", 0, 2),                          # 10 each: fewer cold starts wins
    ("least-cold-starts:pod-seconds<=1x", 2, 2),
    ("least-pod-seconds:cold-starts<=0", 0, None),
])
def test_pick(objective, current, want):
    assert parse_objective(objective).pick(FIGS, current) == want


# ------------------------------------------------------------------------------ command

def write_policy(tmp_path, extra: str = ""):
    path = tmp_path / "p.yaml"
    path.write_text(HEAD + textwrap.indent(textwrap.dedent(extra), "  "))
    return path


def tune(tmp_path, *args: str, policy=None, out="out") -> int:
    policy = policy or write_policy(tmp_path)
    return cli.main(["tune", RECORDING, "--policy", str(policy), "--out", str(tmp_path / out),
                     *args])


def rows(tmp_path, out="out") -> list[dict]:
    with open(tmp_path / out / "variants.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_tune_replays_every_variant_exactly_as_replay_does(tmp_path, capsys):
    code = tune(tmp_path, "--vary", "stableWindow=30s..90s/30s", "--vary",
                "scaleToZeroGracePeriod=0s,30s,2m", "--startup-delay", "10", "--jobs", "2")
    assert code == 0
    text = capsys.readouterr().out
    assert "9 variants" in text and "on the Pareto front" in text
    assert "* picked by least-pod-seconds:unserved<=1x,cold-starts<=1x" in text
    got = rows(tmp_path)
    assert len(got) == 9
    assert [r["current"] for r in got].count("1") == 1          # 1m and 30s: in the grid
    assert [(r["stableWindow"], r["scaleToZeroGracePeriod"]) for r in got if
            r["current"] == "1"] == [("1m", "30s")]
    rec = load(RECORDING)
    base = (tmp_path / "p.yaml").read_text()
    for r in got:
        text = base + f"  stableWindow: {r['stableWindow']}\n" \
                      f"  scaleToZeroGracePeriod: {r['scaleToZeroGracePeriod']}\n"
        [policy] = parse_policies(text, "variant")
        s = summarize(replay(policy, rec.times, rec.values, 10.0))
        for key in FIGURES:
            assert float(r[key]) == pytest.approx(s[key], rel=1e-9, abs=1e-6), (r, key)
    picked = [r for r in got if r["picked"] == "1"]
    assert len(picked) == 1 and picked[0]["pareto"] == "1"
    current = next(r for r in got if r["current"] == "1")
    assert float(picked[0]["pod_seconds"]) <= float(current["pod_seconds"])
    assert float(picked[0]["under_provisioned_demand_seconds"]) <= float(
        current["under_provisioned_demand_seconds"])
    # the policy file is the picked variant, and validates
    [chosen] = parse_policies((tmp_path / "out" / "policy.yaml").read_text(), "picked")
    assert chosen.stable_window == parse_policies(
        base + f"  stableWindow: {picked[0]['stableWindow']}\n", "x")[0].stable_window
    assert (tmp_path / "out" / "tune.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_process_and_several_agree(tmp_path, capsys):
    args = ("--vary", "targetUtilizationPercentage=60..80/10", "--vary",
            "prediction.enabled=false,true", "--startup-delay", "5")
    policy = write_policy(tmp_path, "prediction: {seasonality: none, horizon: 10s}\n")
    assert tune(tmp_path, *args, "--jobs", "1", policy=policy, out="one") == 0
    assert tune(tmp_path, *args, "--jobs", "3", policy=policy, out="three") == 0
    out = capsys.readouterr().out
    assert "forecasts 3×" in out and "windows computed 1×" in out
    assert rows(tmp_path, "one") == rows(tmp_path, "three")
    assert len(rows(tmp_path, "one")) == 6


def test_combinations_the_validator_rejects_are_skipped_and_said_so(tmp_path, capsys):
    # only seasonal-level runs without a season: (holt-winters, none) is rejected, but
    # holt-winters is valid with 1d and none with seasonal-level
    code = tune(tmp_path, "--vary", "prediction.model=seasonal-level,holt-winters", "--vary",
                "prediction.seasonality=none,1d")
    assert code == 0
    out = capsys.readouterr().out
    assert ("skipped 1 combination the policy validator rejects (scaler validate says why):"
            " prediction.model=holt-winters, prediction.seasonality=none") in out
    got = rows(tmp_path)
    assert [(r["prediction.model"], r["prediction.seasonality"]) for r in got] == [
        ("seasonal-level", "none"), ("seasonal-level", "1d"), ("holt-winters", "1d")]
    assert [r["current"] for r in got] == ["0", "1", "0"]


def test_the_current_policy_is_added_when_the_grid_misses_it(tmp_path, capsys):
    assert tune(tmp_path, "--vary", "stableWindow=30s,45s") == 0
    got = rows(tmp_path)
    assert [r["stableWindow"] for r in got] == ["(default)", "30s", "45s"]
    assert [r["current"] for r in got] == ["1", "0", "0"]


def test_a_range_needs_no_quoting_and_durations_come_back_as_written(tmp_path, capsys):
    assert tune(tmp_path, "--vary", "scaleDownDelay=0s..60s/20s") == 0
    assert [r["scaleDownDelay"] for r in rows(tmp_path)] == ["0s", "20s", "40s", "1m"]


def test_when_no_variant_meets_the_objective_nothing_is_picked(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "policy.yaml").write_text("from an earlier run")
    code = tune(tmp_path, "--vary", "stableWindow=30s,1m", "--pick",
                "least-pod-seconds:unserved<=0")
    assert code == 1
    assert "no variant meets least-pod-seconds:unserved<=0" in capsys.readouterr().out
    assert not (tmp_path / "out" / "policy.yaml").exists()
    assert len(rows(tmp_path)) == 2


@pytest.mark.parametrize("args, fragment", [
    (("--vary", "stableWindo=30s"), "--vary stableWindo: not a policy key (did you mean "
                                    "stableWindow?)"),
    (("--vary", "stableWindow=5s,30s"), "p.yaml: document 1 with --vary stableWindow=5s (web): "
                                        "spec.stableWindow: '5s' is out of range (allowed: "
                                        "6s..1h)"),
    (("--vary", "prediction.quantile=0.7,0.9"),
     "spec.prediction.quantile: is not used by model seasonal-level"),
    (("--vary", "prediction.model=linear,ewma", "--vary", "prediction.minHistory=1,2"),
     "with --vary prediction.minHistory=1 (web): spec.prediction.minHistory: is not used by "
     "model seasonal-level"),
    (("--vary", "stableWindow=30s", "--vary", "stableWindow=1m"), "given twice"),
    (("--vary", "scaleToZero.prewarmLead=10s,30s"),
     "with --vary scaleToZero.prewarmLead=10s (web): spec.scaleToZero.prewarmLead: is used "
     "only with keepAlive: histogram"),
    (("--vary", "stableWindow=30s", "--pick", "fastest"), "--pick 'fastest'"),
    ((), "--vary KEY=V1,V2,... is required"),
    (("--vary", "stableWindow=30s", "--startup-delay", "-1"), "--startup-delay"),
    (("--vary", "stableWindow=30s", "--jobs", "0"), "--jobs"),
])
def test_bad_input_exits_2_before_anything_runs(tmp_path, capsys, args, fragment):
    assert tune(tmp_path, *args) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_bad_recording_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,value\n1,2\n0,3\n")
    code = cli.main(["tune", str(bad), "--policy", str(write_policy(tmp_path)), "--vary",
                     "stableWindow=30s", "--out", str(tmp_path / "out")])
    assert code == 2 and "bad.csv" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_picked_policy_keeps_the_rest_of_the_document(tmp_path, capsys):
    policy = write_policy(tmp_path, "minReplicas: 1\nscaleToZero: {keepAlive: fixed}\n")
    assert tune(tmp_path, "--vary", "maxScaleDownRate=1.5,2,4", policy=policy) == 0
    doc = yaml.safe_load((tmp_path / "out" / "policy.yaml").read_text())
    assert doc["metadata"] == {"name": "web"} and doc["spec"]["minReplicas"] == 1
    assert doc["spec"]["scaleToZero"] == {"keepAlive": "fixed"}
    assert doc["spec"]["maxScaleDownRate"] in (1.5, 2, 4)
    header = (tmp_path / "out" / "policy.yaml").read_text().splitlines()[:2]
    assert header[0].startswith("# scaler tune default.csv: picked by least-pod-seconds")
    assert header[1].startswith("# maxScaleDownRate=")
