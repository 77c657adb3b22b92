"""`scaler run --shard`: two real daemon processes share the policies through bucket
Leases on the fake API, each policy worked on by one of them; on SIGTERM one hands its
buckets over at once. Short by design: the 3-replica, 3,000-target run with a kill is
benchmarks/scale.py shards."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from support.daemon import DaemonProcess, write_kubeconfig
from support.exporter import LoadExporter
from support.fakekube import FakeKubeAPIServer, deployment

SERVICES = [f"svc-{i}" for i in range(8)]
QUERY = "sum by (service) (shard_load)"


@pytest.fixture(scope="module")
def load_exporter() -> Iterator[LoadExporter]:
    with LoadExporter() as exporter:
        for i, service in enumerate(SERVICES):
            exporter.set("shard_load", 100.0 * (1 + i % 3), labels={"service": service})
        yield exporter


def test_two_sharded_daemons_split_the_policies_and_hand_over_on_sigterm(
        tmp_path, load_exporter, prometheus):
    prometheus.wait_for_sample("count(shard_load)")
    policies = tmp_path / "policies.yaml"
    policies.write_text("\n---\n".join(
        f"apiVersion: scaler/v1\nkind: ScalingPolicy\nmetadata: {{name: {s}}}\nspec:\n"
        f"  scaleTargetRef: {{name: {s}}}\n"
        f"  metric: {{query: '{QUERY}', select: {{service: {s}}}}}\n"
        "  target: 100\n  targetUtilizationPercentage: 100\n  stableWindow: 6s\n"
        for s in SERVICES))
    time.sleep(6)     # history for the warm start
    with FakeKubeAPIServer(ready_delay=0.0) as server:
        for s in SERVICES:
            server.create(deployment(s, replicas=1))
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url)
        flags = ["--shard", "--buckets", "4", "--lease-namespace", "default"]
        a = DaemonProcess(policies, prometheus.url, kubeconfig, extra=flags,
                          env={"POD_NAME": "scaler-a"}).start()
        b = DaemonProcess(policies, prometheus.url, kubeconfig, extra=flags,
                          env={"POD_NAME": "scaler-b"}).start()
        try:
            def split() -> bool:
                held = [a.metric("scaler_buckets_held"), b.metric("scaler_buckets_held")]
                return held == [2.0, 2.0]
            a.wait_for(split, 30, "two buckets each")
            holders = {server.get("Lease", f"scaler-bucket-{k}")["spec"]["holderIdentity"]
                       for k in range(4)}
            assert holders == {"scaler-a", "scaler-b"}
            # Every target ends where its series says (100 → 1, 200 → 2, 300 → 3).
            want = {s: 1 + i % 3 for i, s in enumerate(SERVICES)}
            a.wait_for(lambda: all(server.get("Deployment", s)["spec"]["replicas"] == n
                                   for s, n in want.items()), 30, "every target scaled")
            since = len(a.ticks()), len(b.ticks())
            time.sleep(4)
            served_a = {t["policy"] for t in a.ticks()[since[0]:]}
            served_b = {t["policy"] for t in b.ticks()[since[1]:]}
            assert served_a and served_b and not served_a & served_b
            assert served_a | served_b == set(SERVICES)
            # Each target was written by one replica only (its User-Agent names it).
            for s in SERVICES:
                agents = {w.user_agent for w in server.writes("Deployment", s)
                          if w.subresource == "scale"}
                assert len(agents) <= 1, (s, agents)
            # SIGTERM: a hands its buckets over; b takes them without waiting a lease out.
            code, _ = a.terminate()
            assert code == 0
            b.wait_for(lambda: b.metric("scaler_buckets_held") == 4.0, 8, "all buckets")
            after = len(b.ticks())
            b.wait_for(lambda: {t["policy"] for t in b.ticks()[after:]} == set(SERVICES),
                       10, "b serving every policy")
        finally:
            a.kill()
            b.kill()
