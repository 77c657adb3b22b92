"""Shared queries and spec.metric.select: one query per tick for every policy that asks
it, each policy taking its own series — against the real Prometheus.

The loop runs on the system clock here (Prometheus stamps real time); the actuator is a
hand-written in-memory target (scaler's own Protocol), so the only thing counted is what
Prometheus was asked.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry
from support.exporter import LoadExporter
from support.prometheus import PrometheusServer, eventually

from scaler.actuators import ScaleStatus
from scaler.clock import SystemClock
from scaler.daemon.loop import Daemon
from scaler.daemon.observability import Metrics
from scaler.policy import MetricSpec, Policy, PolicyError, ScaleTargetRef
from scaler.policy.parse import parse_policies
from scaler.sources.prometheus import PrometheusSource
from scaler.sources.shared import Read, read_all

QUERY = "sum by (service) (app_service_load)"
SERVICES = {"checkout": 350.0, "cart": 75.0, "search": 0.0}


@pytest.fixture(scope="module")
def load_exporter() -> Iterator[LoadExporter]:
    with LoadExporter() as exporter:
        for service, load in SERVICES.items():
            for pod in ("a", "b"):
                exporter.set("app_service_load", load / 2,
                             labels={"service": service, "pod": pod})
        yield exporter


class CountingSource(PrometheusSource):
    """The real source, counting the range queries it sends."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.queries: list[tuple[str, str]] = []

    def _query_range(self, query, start, end, step, deadline, **kw):
        self.queries.append((query, "history" if kw.get("earlier_ok") else "read"))
        return super()._query_range(query, start, end, step, deadline, **kw)


class Targets:
    """In-memory workloads for every policy (ready at once), recording the writes."""

    def __init__(self):
        self.replicas: dict[str, int] = {}
        self.writes: list[tuple[str, int]] = []

    def read(self, target, *, deadline=None):
        n = self.replicas.setdefault(target.name, 1)
        return ScaleStatus(n, n, str(len(self.writes) + 1))

    def scale(self, target, replicas, *, resource_version, reason, message, deadline=None):
        self.replicas[target.name] = replicas
        self.writes.append((target.name, replicas))
        return True

    def warn(self, target, reason, message, *, deadline=None):
        return True


def policy(name: str, select: dict[str, str], query: str = QUERY) -> Policy:
    return replace(Policy(), name=name, scale_target_ref=ScaleTargetRef(name=name),
                   metric=MetricSpec(query=query, select=tuple(sorted(select.items()))),
                   stable_window=6, target=100, target_utilization_percentage=100,
                   max_scale_down_rate=1000)


@pytest.fixture(scope="module")
def source(prometheus: PrometheusServer) -> Iterator[CountingSource]:
    with CountingSource(prometheus.url) as src:
        eventually(lambda: len(prometheus.query(QUERY)) == 3)
        time.sleep(8)    # history for a 6 s stable window
        yield src


def test_policies_with_one_query_share_one_query_per_tick_and_take_their_series(
        source: CountingSource) -> None:
    policies = [policy("checkout", {"service": "checkout"}),
                policy("cart", {"service": "cart"}),
                policy("search", {"service": "search"}),
                policy("gone", {"service": "no-such-service"})]
    targets = Targets()
    metrics = Metrics(CollectorRegistry())
    daemon = Daemon(policies, source=source, actuator=targets, clock=SystemClock(),
                    metrics=metrics, evaluation_delay=0.5)
    source.queries.clear()
    daemon.run_once()                      # the warm start: one history query for all
    assert source.queries == [(QUERY, "history")]
    passes = 0
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        time.sleep(0.25)
        before = len(source.queries)
        daemon.run_once()
        made = source.queries[before:]
        if made:
            passes += 1
            assert len(made) == 1 and made[0][0] == QUERY   # one for the four policies
    assert passes >= 3
    # Each policy decided on its own series: 350 → 4, 75 → 1, 0 → 0 after the grace.
    t = daemon.targets
    assert t["checkout"].last_value == 350 and t["cart"].last_value == 75
    assert t["search"].last_value == 0
    assert targets.replicas["checkout"] == 4 and targets.replicas["cart"] == 1
    # No series has the select's labels: no data for that policy alone, held, counted.
    assert t["gone"].no_data == "empty"
    assert "gone" not in {name for name, _ in targets.writes}
    assert metrics.registry.get_sample_value(
        "scaler_metric_errors_total", {"policy": "gone", "reason": "empty"}) >= 3
    assert metrics.registry.get_sample_value("scaler_metric_queries_total") == passes + 1


def test_a_select_that_matches_several_series_is_no_data(source: CountingSource) -> None:
    now = time.time()
    reads = [Read("pods", source, "app_service_load", int(now) - 3, int(now),
                  time.monotonic() + 5, (("service", "checkout"),)),
             Read("one", source, "app_service_load", int(now) - 2, int(now),
                  time.monotonic() + 5, (("pod", "a"), ("service", "checkout")))]
    source.queries.clear()
    out = read_all(reads)
    assert len(source.queries) == 1
    assert out["pods"].error == "multiple_series" and "pod" in out["pods"].detail
    assert out["one"].ok and {v for _, v in out["one"].samples} == {175.0}
    # Each policy reads from its own first second of the shared answer.
    assert out["one"].samples[0][0] >= int(now) - 2


def test_a_query_without_select_still_refuses_several_series(source: CountingSource) -> None:
    now = int(time.time())
    answer = source.answer(QUERY, now - 2, now, deadline=time.monotonic() + 5)
    assert answer.reading().error == "multiple_series"
    assert answer.reading((("service", "cart"),)).ok


def _errors(text: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policies(textwrap.dedent(text), "p.yaml")
    return info.value.errors


BASE_DOC = """
apiVersion: scaler/v1
kind: ScalingPolicy
metadata: {name: checkout}
spec:
  scaleTargetRef: {name: checkout}
  metric:
"""


@pytest.mark.parametrize("metric, wrong", [
    # The outermost aggregation keeps only `service`: `pod` can never match.
    ("{query: 'sum by (service) (rate(x[30s]))', select: {pod: a}}",
     "spec.metric.select.pod: the query's result cannot have this label: its outermost "
     "aggregation keeps only service"),
    ("{query: 'sum(rate(x[30s]))', select: {service: checkout}}",
     "spec.metric.select.service: the query's result cannot have this label: its outermost "
     "aggregation keeps no label"),
    ("{query: 'sum(x) by (service)', select: {service: 3}}",
     "spec.metric.select.service: expected a string (quote it), got 3"),
    ("{query: 'x', select: {'1bad': a}}", "is not a Prometheus label name"),
    ("{query: 'x', select: []}", "spec.metric.select: expected a mapping of label: value"),
    ("{source: activator, select: {service: a}}",
     "spec.metric.select: is used only with source: prometheus"),
])
def test_a_select_that_cannot_match_is_refused_where_it_can_be_known(metric, wrong):
    errors = _errors(BASE_DOC + f"    {metric}\n")
    assert any(wrong in e and e.startswith("p.yaml") for e in errors), errors


def test_a_select_on_a_query_of_unknown_labels_is_accepted():
    (p,) = parse_policies(textwrap.dedent(BASE_DOC) + "    {query: 'rate(x[1m])', "
                           "select: {service: checkout, zone: b}}\n", "p.yaml")
    assert p.metric.select == (("service", "checkout"), ("zone", "b"))


def test_distinct_queries_go_in_one_request_and_each_keeps_its_own_series(
        source: CountingSource) -> None:
    now = int(time.time())
    queries = [f'sum(app_service_load{{service="{s}"}})' for s in SERVICES]
    source.queries.clear()
    answers = source.answer_many(queries, now - 3, now, deadline=time.monotonic() + 5)
    assert len(source.queries) == 1
    for query, (service, load) in zip(queries, SERVICES.items()):
        reading = answers[query].reading()
        assert reading.ok and {v for _, v in reading.samples} == {load}, (service, reading)
    # A query Prometheus refuses fails alone: the batch is asked again one by one.
    broken = ["sum(app_service_load{service=\"cart\"})", "sum(rate(app_service_load[1s]"]
    source.queries.clear()
    answers = source.answer_many(broken, now - 3, now, deadline=time.monotonic() + 5)
    assert answers[broken[0]].reading().ok
    assert answers[broken[1]].reading().error == "query_error"
    assert len(source.queries) == 3


def test_a_loop_of_many_distinct_queries_sends_them_batched(source: CountingSource) -> None:
    # 24 distinct queries (each service's load times a different factor): batched, as
    # from MIN_BATCHING of them; a handful would each be its own request.
    policies = [policy(f"own-{s}-{k}", {}, f'{k} * sum(app_service_load{{service="{s}"}})')
                for s in SERVICES for k in range(1, 8)] + [
        policy("nothing", {}, "sum(no_such_metric)"),
        policy("refused", {}, "sum(rate(app_service_load[1s]")]
    targets = Targets()
    daemon = Daemon(policies, source=source, actuator=targets, clock=SystemClock(),
                    metrics=Metrics(CollectorRegistry()), evaluation_delay=0.5)
    source.queries.clear()
    daemon.run_once()
    # One batch; refused by Prometheus because of one query, then each alone.
    assert len(source.queries) == 1 + len(policies)
    source.queries.clear()
    policies = policies[:-1]
    daemon.set_policies("files", policies)
    daemon.run_once()
    daemon.run_once()
    time.sleep(2.2)
    daemon.run_once()
    assert len(source.queries) <= 2                 # 22 queries, one request per tick
    assert daemon.targets["own-checkout-1"].last_value == 350
    assert daemon.targets["own-cart-3"].last_value == 225
    assert daemon.targets["nothing"].no_data == "empty"


def test_a_few_distinct_queries_are_each_their_own_request(source: CountingSource) -> None:
    policies = [policy(f"few-{s}", {}, f'sum(app_service_load{{service="{s}"}})')
                for s in SERVICES]
    daemon = Daemon(policies, source=source, actuator=Targets(), clock=SystemClock(),
                    metrics=Metrics(CollectorRegistry()), evaluation_delay=0.5)
    source.queries.clear()
    daemon.run_once()
    assert sorted(q for q, _ in source.queries) == sorted(p.metric.query for p in policies)
