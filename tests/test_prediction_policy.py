"""The prediction and scaleToZero blocks: parsing, errors, and `scaler replay --compare`."""

from __future__ import annotations

import json
import textwrap

import pytest

from scaler import cli
from scaler.policy import PolicyError, PredictionPolicy, parse_policies

HEAD = """\
apiVersion: scaler/v1
kind: ScalingPolicy
metadata: {name: web}
spec:
  scaleTargetRef: {name: web}
  metric: {query: sum(web_inflight)}
"""


def parse(extra: str):
    return parse_policies(HEAD + textwrap.indent(textwrap.dedent(extra), "  "), "p.yaml")[0]


def errors(extra: str) -> str:
    with pytest.raises(PolicyError) as exc:
        parse(extra)
    return "\n".join(exc.value.errors)


def test_defaults_are_off():
    p = parse("")
    assert p.prediction == PredictionPolicy() and not p.prediction.enabled
    assert p.keep_alive == "fixed"


def test_full_block_parses():
    p = parse("""
        prediction:
          enabled: true
          mode: observe
          model: holt-winters
          seasonality: [7d, 1d]
          horizon: 2m
          minHistory: 1.5
          quantile: 0.95
          refitInterval: 30m
        scaleToZero: {keepAlive: histogram}
    """)
    assert p.prediction == PredictionPolicy(
        enabled=True, mode="observe", model="holt-winters", seasonality=(86400.0, 604800.0),
        horizon=120.0, min_history=1.5, quantile=0.95, refit_interval=1800.0)
    assert p.keep_alive == "histogram"


@pytest.mark.parametrize("block,key,fragment", [
    pytest.param("prediction: {enabled: yes-please}", "spec.prediction.enabled",
                 "expected true or false", id="enabled-not-bool"),
    pytest.param("prediction: {model: arima}", "spec.prediction.model", "not one of",
                 id="unknown-model"),
    pytest.param("prediction: {mode: maybe}", "spec.prediction.mode", "not one of",
                 id="unknown-mode"),
    pytest.param("prediction: {seasonality: [2d, 5d]}", "spec.prediction.seasonality",
                 "whole multiple", id="seasons-not-multiples"),
    pytest.param("prediction: {seasonality: 90s}", "spec.prediction.seasonality",
                 "2m..30d", id="season-too-short"),
    pytest.param("prediction: {horizon: 2h}", "spec.prediction.horizon", "0s..1h",
                 id="horizon-too-long"),
    pytest.param("prediction: {seasonality: 10m, horizon: 10m}", "spec.prediction.horizon",
                 "shorter than the shortest season", id="horizon-not-below-season"),
    pytest.param("prediction: {seasonality: 10m, horizon: 9m1s}", "spec.prediction.horizon",
                 "by at least the forecast's 1m grid", id="horizon-within-the-last-minute"),
    pytest.param("prediction: {quantile: 1}", "spec.prediction.quantile", "0.5..0.999",
                 id="quantile-one"),
    pytest.param("prediction: {minHistory: 0}", "spec.prediction.minHistory", "1..52",
                 id="min-history-zero"),
    pytest.param("prediction: {refitInterval: 5s}", "spec.prediction.refitInterval",
                 "1m..1d", id="refit-too-often"),
    pytest.param("prediction: {lookahead: 30s}", "spec.prediction.lookahead", "unknown key",
                 id="unknown-key"),
    pytest.param("scaleToZero: {keepAlive: forever}", "spec.scaleToZero.keepAlive",
                 "not one of", id="unknown-keep-alive"),
])
def test_bad_values_name_the_key_and_the_range(block, key, fragment):
    message = errors(block)
    assert "p.yaml: document 1 (web)" in message
    assert key in message and fragment in message


def test_a_horizon_a_grid_below_the_season_is_the_longest_allowed():
    p = parse("prediction: {enabled: true, seasonality: 10m, horizon: 9m}")
    assert p.prediction.horizon == 540.0 and p.prediction.horizon_steps == (10, 10)


def test_shipped_predictive_example_validates(capsys):
    assert cli.main(["validate", "policies/predictive.yaml"]) == 0
    assert "catalog" in capsys.readouterr().out


def write_policy(path, extra: str):
    path.write_text(HEAD + textwrap.indent(textwrap.dedent(extra), "  "))
    return path


def test_compare_prints_both_and_draws_compare_png(tmp_path, capsys):
    policy = write_policy(tmp_path / "p.yaml", """
        prediction: {enabled: true, model: ewma, horizon: 30s, quantile: 0.7}
        scaleToZero: {keepAlive: histogram}
    """)
    out = tmp_path / "out"
    code = cli.main(["replay", "scaler/recordings/diurnal_morning.csv", "--policy",
                     str(policy), "--out", str(out), "--startup-delay", "30", "--compare"])
    assert code == 0
    text = capsys.readouterr().out
    assert "compared with the reactive policy" in text and "reactive" in text
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["compare"]) == {"reactive"}
    assert summary["forecast"]["model"] == "ewma"
    assert 0 <= summary["forecast"]["coverage"] <= 1
    header = (out / "decisions.csv").read_text().splitlines()[0]
    assert header.endswith("forecast,forecast_floor")


def test_compare_without_anything_to_compare_is_an_error(tmp_path, capsys):
    policy = write_policy(tmp_path / "p.yaml", "")
    code = cli.main(["replay", "scaler/recordings/default.csv", "--policy", str(policy),
                     "--out", str(tmp_path / "out"), "--compare"])
    assert code == 2
    assert "nothing to compare" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
