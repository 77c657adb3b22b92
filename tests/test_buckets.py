"""Shards on bucket Leases: rounds driven by hand on a manual clock, against the fake API
over real HTTP. At every step, no bucket may be writable by two replicas."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from support.leases import client, clock, server  # noqa: F401 (fixtures)

from scaler.clock import ManualClock
from scaler.daemon.buckets import Shards, bucket_of, shard_key
from scaler.policy import Policy, ScaleTargetRef

B = 10


def replica(client, clock, name: str) -> Shards:
    return Shards(client, "default", "scaler", name, buckets=B, clock=clock,
                  stop=threading.Event())


def policy_in(bucket: int) -> Policy:
    for n in range(10_000):
        p = replace(Policy(), name=f"p{n}", scale_target_ref=ScaleTargetRef(name=f"p{n}"))
        if bucket_of(shard_key(p), B) == bucket:
            return p
    raise AssertionError("no policy hashes there")


POLICIES = [policy_in(b) for b in range(B)]


def one_writer(replicas: list[Shards]) -> None:
    for p in POLICIES:
        writers = [r.identity for r in replicas if r.may_write(p)]
        assert len(writers) <= 1, (p.name, writers)


def rounds(replicas: list[Shards], clock: ManualClock, n: int, step: float = 2.0) -> None:
    for _ in range(n):
        for r in replicas:
            r.round()
            one_writer(replicas)
        clock.advance(step)
        one_writer(replicas)


def test_the_hash_is_stable_and_spreads_policies():
    assert bucket_of("shop/checkout", 10) == bucket_of("shop/checkout", 10)
    counts = [0] * B
    for n in range(3000):
        counts[bucket_of(f"ns{n % 7}/policy-{n}", B)] += 1
    assert min(counts) > 240 and max(counts) < 360


def test_one_replica_holds_every_bucket_and_a_second_gets_half_with_one_writer(
        client, clock, server):
    a = replica(client, clock, "a")
    assert len(a.round()) == B
    assert all(a.serves(p) and a.may_write(p) for p in POLICIES)
    b = replica(client, clock, "b")
    rounds([a, b], clock, 4)
    assert len(a.held()) == 5 and len(b.held()) == 5
    assert set(a.held()).isdisjoint(b.held())
    # Every bucket's Lease names the replica that writes its targets.
    for k in range(B):
        holder = server.get("Lease", f"scaler-bucket-{k}")["spec"]["holderIdentity"]
        assert holder == ("a" if k in a.held() else "b")


def test_three_replicas_hold_at_most_ceil_b_over_three(client, clock):
    replicas = [replica(client, clock, name) for name in "abc"]
    rounds(replicas, clock, 5)
    held = [len(r.held()) for r in replicas]
    assert sum(held) == B and max(held) <= 4 and min(held) >= 2
    assert all(r.live == 3 for r in replicas)


def test_replicas_joining_one_by_one_end_within_one_bucket_of_each_other(client, clock):
    a, b, c = (replica(client, clock, name) for name in "abc")
    rounds([a], clock, 2)
    assert len(a.held()) == B
    rounds([a, b], clock, 3)
    rounds([a, b, c], clock, 8)
    held = sorted(len(r.held()) for r in (a, b, c))
    assert held == [3, 3, 4]
    assert set(a.held()) | set(b.held()) | set(c.held()) == set(range(B))
    # And it stays put: no bucket moves once balanced.
    before = [r.held() for r in (a, b, c)]
    rounds([a, b, c], clock, 5)
    assert [r.held() for r in (a, b, c)] == before


def test_a_lost_replica_stops_writing_before_its_buckets_are_taken_over(client, clock):
    a, b, c = (replica(client, clock, name) for name in "abc")
    rounds([a, b, c], clock, 5)
    lost = set(c.held())
    assert lost
    # c stops renewing (killed, or cut off from the API server): by the injected clock
    # its claim ends at the renew deadline (10 s), before a lease duration (15 s) has
    # passed, which is when the others may take its buckets.
    taken_at = None
    for step in range(12):
        for r in (a, b):
            r.round()
        one_writer([a, b, c])
        if lost & (set(a.held()) | set(b.held())) and taken_at is None:
            taken_at = step * 2.0
            assert not any(c.may_write(p) for p in POLICIES)
        clock.advance(2.0)
    assert not c.held()
    assert set(a.held()) | set(b.held()) == set(range(B))
    assert 14.0 <= taken_at <= 15.0 + 4.0          # after the lease duration, within 2 rounds
    assert a.live == b.live == 2 and max(len(a.held()), len(b.held())) == 5


def test_a_write_in_flight_holds_the_hand_over(client, clock):
    a = replica(client, clock, "a")
    a.round()
    p = POLICIES[0]
    b = replica(client, clock, "b")
    b.round()                               # b is a member now; a's next round gives 5 up
    given_up = [k for k in range(B) if k not in a._preference[:5]]
    p = POLICIES[given_up[0]]
    with a.writing(p) as allowed:
        assert allowed
        a._drain_timeout = 0.0
        a.round()                           # cannot hand this bucket over yet
        assert a._holds_now(given_up[0]) and not a.may_write(p)
        with a.writing(p) as again:
            assert not again                # no new write once the hand-over began
    a.round()
    assert given_up[0] not in a.held()
    b.round()
    assert b.may_write(p) and not a.may_write(p)


def test_shutdown_clears_the_buckets_for_an_instant_takeover(client, clock, server):
    a, b = replica(client, clock, "a"), replica(client, clock, "b")
    rounds([a, b], clock, 4)
    mine = a.held()
    a._stop.set()
    assert a.release() == len(mine)
    assert not any(a.may_write(p) for p in POLICIES)
    b.round()
    clock.advance(2.0)
    rounds([b], clock, 1)
    # a's membership is cleared too: b alone, holding everything, without waiting 15 s.
    assert b.live == 1 and len(b.held()) == B


def test_renew_deadline_must_leave_room_before_the_lease_expires(client, clock):
    with pytest.raises(ValueError, match="lease_duration"):
        Shards(client, "default", "scaler", "a", lease_duration=10, renew_deadline=10,
               clock=clock)
    with pytest.raises(ValueError, match="buckets"):
        Shards(client, "default", "scaler", "a", buckets=0, clock=clock)
