"""The bundled multi-day recording (NASA 1995, a row per minute, gzipped): it replays as
it is, the predictive example shows its gain on it out of the box, and --compare says why
a forecast never acted when it did not."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from scaler import app
from scaler.cli import main
from scaler.sources.recording import RecordingError
from scaler.sources.recording import load as load_recording
from scaler.sources.recording import parse as recording_parse

ROOT = Path(__file__).resolve().parent.parent
NASA = ROOT / "scaler" / "recordings" / "nasa_aug1995_x100.csv.gz"
PREDICTIVE = ROOT / "policies" / "predictive.yaml"


def test_it_spans_four_weeks_at_a_row_per_minute_and_stays_small():
    rec = load_recording(NASA)
    assert len(rec) == 28 * 1440
    assert np.all(np.diff(rec.times) == 60)
    assert NASA.stat().st_size < 300_000          # a few hundred KB in the package
    assert rec.values.max() > 0 and rec.values.min() >= 0


def test_the_predictive_example_shows_its_gain_out_of_the_box(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["replay", str(NASA), "--policy", str(PREDICTIVE), "--compare", "--no-chart",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    reactive = summary["compare"]["reactive"]
    assert summary["recording"]["resolution_seconds"] == 60
    assert summary["forecast"]["floor_ticks"] > 0
    # Less unserved demand than the reactive twin, for a bounded extra cost.
    assert (summary["under_provisioned_demand_seconds"]
            < 0.6 * reactive["under_provisioned_demand_seconds"])
    assert summary["pod_seconds"] < 1.15 * reactive["pod_seconds"]
    printed = capsys.readouterr().out
    assert "compared with the reactive policy" in printed
    assert "never acted" not in printed


def _short_recording(path: Path, seconds: int) -> Path:
    rows = "".join(f"{1_772_409_600 + t},{150 + (t % 7)}\n" for t in range(seconds))
    path.write_text("timestamp,value\n" + rows)
    return path


def test_compare_says_the_forecast_had_not_enough_history(tmp_path, capsys):
    recording = _short_recording(tmp_path / "r.csv", 600)
    assert main(["replay", str(recording), "--policy", str(PREDICTIVE), "--compare",
                 "--no-chart", "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "the forecast never acted: not enough history — no forecast formed in 9m58s" \
        in printed
    assert "its 1d season shapes the forecast only after a full season of history" in printed


def test_compare_says_observe_mode_never_acts(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text(PREDICTIVE.read_text().replace("mode: act", "mode: observe"))
    run = app.run_replay(NASA, policy_path=policy, compare=True, chart=False,
                         out=tmp_path / "out")
    assert app.forecast_note(run).startswith("the forecast never acted: prediction.mode is "
                                             "observe")


# ---- gzipped recordings are read as they are, and refused clearly when broken

def test_a_gzipped_recording_reads_as_the_plain_one(tmp_path):
    plain = _short_recording(tmp_path / "r.csv", 120)
    packed = tmp_path / "r.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    a, b = load_recording(plain), load_recording(packed)
    assert np.array_equal(a.times, b.times) and np.array_equal(a.values, b.values)


def test_a_truncated_gzip_is_one_clear_error(tmp_path):
    packed = tmp_path / "r.csv.gz"
    packed.write_bytes(gzip.compress(_short_recording(tmp_path / "r.csv", 600).read_bytes())[:-40])
    with pytest.raises(RecordingError, match=r"r\.csv\.gz: the gzip file is truncated"):
        load_recording(packed)


def test_a_gzip_that_unpacks_beyond_the_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(recording_parse, "GZIP_MAX", 1000)
    packed = tmp_path / "bomb.csv.gz"
    packed.write_bytes(gzip.compress(b"timestamp,value\n" + b"1,0\n" * 10_000))
    with pytest.raises(RecordingError, match=r"bomb\.csv\.gz: unpacks to more than 0 MiB"):
        load_recording(packed)


def test_garbage_with_a_gzip_header_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 50)
    assert main(["replay", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: not a valid gzip file") and "Traceback" not in err
