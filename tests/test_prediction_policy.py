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


def test_the_default_model_is_seasonal_level_with_a_cost_budget():
    p = parse("prediction: {enabled: true}").prediction
    assert (p.model, p.horizon, p.max_extra_cost, p.seasonality) == (
        "seasonal-level", 60.0, 0.10, (86400.0,))
    assert p.warm_history == 14 * 86400.0      # a restarted daemon reads its profile's days


@pytest.mark.parametrize("text, share", [
    ("15%", 0.15), ("0%", 0.0), ("100%", 1.0), ("2.5%", 0.025), (0.2, 0.2), (0, 0.0), (1, 1.0),
])
def test_max_extra_cost_is_a_percentage_or_a_fraction(text, share):
    p = parse(f"prediction: {{enabled: true, maxExtraCost: {text!r}}}".replace("'", '"'))
    assert p.prediction.max_extra_cost == pytest.approx(share)


def test_seasonal_level_may_run_without_a_season():
    p = parse("prediction: {enabled: true, seasonality: none}").prediction
    assert p.seasonality == () and p.warm_history == 3600.0


def test_cold_start_cost_sets_the_keep_alive_to_beat():
    p = parse("scaleToZero: {keepAlive: histogram, coldStartCost: 20m}")
    assert (p.keep_alive, p.cold_start_cost) == ("histogram", 1200.0)
    assert parse("scaleToZero: {keepAlive: histogram}").cold_start_cost == 600.0


def test_prewarm_lead_is_learnt_unless_set():
    assert parse("scaleToZero: {keepAlive: histogram}").prewarm_lead is None
    p = parse("scaleToZero: {keepAlive: histogram, prewarmLead: 45s}")
    assert p.prewarm_lead == 45.0
    assert parse("scaleToZero: {keepAlive: histogram, prewarmLead: 0s}").prewarm_lead == 0.0


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
    pytest.param("prediction: {maxExtraCost: 150%}", "spec.prediction.maxExtraCost",
                 "0%..100%", id="budget-over-100"),
    pytest.param("prediction: {maxExtraCost: 1.5}", "spec.prediction.maxExtraCost",
                 "or a fraction 0..1", id="budget-fraction-over-1"),
    pytest.param("prediction: {maxExtraCost: lots%}", "spec.prediction.maxExtraCost",
                 "is not a percentage", id="budget-not-a-number"),
    pytest.param("prediction: {maxExtraCost: true}", "spec.prediction.maxExtraCost",
                 "expected a number", id="budget-bool"),
    pytest.param("prediction: {quantile: 0.7}", "spec.prediction.quantile",
                 "is not used by model seasonal-level (it applies to holt-winters, linear "
                 "and ewma only)", id="quantile-with-seasonal-level"),
    pytest.param("prediction: {minHistory: 3}", "spec.prediction.minHistory",
                 "is not used by model seasonal-level (it applies to holt-winters only)",
                 id="min-history-with-seasonal-level"),
    pytest.param("prediction: {model: linear, refitInterval: 1h}",
                 "spec.prediction.refitInterval",
                 "is not used by model linear (it applies to holt-winters and ewma only)",
                 id="refit-with-linear"),
    pytest.param("prediction: {model: holt-winters, maxExtraCost: 5%}",
                 "spec.prediction.maxExtraCost",
                 "is not used by model holt-winters (it applies to seasonal-level only)",
                 id="budget-with-holt-winters"),
    pytest.param("prediction: {seasonality: [1d, 7d]}", "spec.prediction.seasonality",
                 "seasonal-level takes one season, or none", id="seasonal-level-two-seasons"),
    pytest.param("prediction: {model: ewma, seasonality: none}",
                 "spec.prediction.seasonality", "ewma needs a season",
                 id="no-season-for-ewma"),
    pytest.param("prediction: {seasonality: 10m, horizon: 10m}", "spec.prediction.horizon",
                 "shorter than the shortest season", id="seasonal-level-horizon-season"),
    pytest.param("scaleToZero: {coldStartCost: 20m}", "spec.scaleToZero.coldStartCost",
                 "is used only with keepAlive: histogram", id="cold-start-cost-with-fixed"),
    pytest.param("scaleToZero: {keepAlive: histogram, coldStartCost: 30s}",
                 "spec.scaleToZero.coldStartCost", "1m..4h", id="cold-start-cost-short"),
    pytest.param("scaleToZero: {keepAlive: histogram, coldStartCost: 5h}",
                 "spec.scaleToZero.coldStartCost", "1m..4h", id="cold-start-cost-long"),
    pytest.param("scaleToZero: {keepAlive: histogram, coldStartCost: 600}",
                 "spec.scaleToZero.coldStartCost", "expected a duration string",
                 id="cold-start-cost-number"),
    pytest.param("scaleToZero: {prewarmLead: 20s}", "spec.scaleToZero.prewarmLead",
                 "is used only with keepAlive: histogram", id="prewarm-lead-with-fixed"),
    pytest.param("scaleToZero: {keepAlive: histogram, prewarmLead: 11m}",
                 "spec.scaleToZero.prewarmLead", "0s..10m", id="prewarm-lead-long"),
    pytest.param("scaleToZero: {keepAlive: histogram, prewarmLead: soon}",
                 "spec.scaleToZero.prewarmLead", "soon", id="prewarm-lead-not-a-duration"),
])
def test_bad_values_name_the_key_and_the_range(block, key, fragment):
    message = errors(block)
    assert "p.yaml: document 1 (web)" in message
    assert key in message and fragment in message


def test_a_wrong_model_is_the_only_error_not_its_seasons():
    assert errors("prediction: {model: arima, seasonality: [1d, 7d]}").count("\n") == 0


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
