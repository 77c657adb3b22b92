"""Shared queries: the reads of one pass of the loop, grouped so that policies asking the
same query ask it once.

Thousands of policies commonly read one query each way (``sum by (service) (...)`` with a
``spec.metric.select`` per service). A pass of the loop hands :func:`read_all` every read
it needs; reads of the same source, query and last second (a tick's read or a warm
start's history alike) become one query over the union of their ranges, and each policy
takes its series and its own first second from that one answer
(:meth:`~scaler.sources.prometheus.Answer.reading`). Every rule of "no data is not zero"
holds per policy: a failed query is the same failure for each of them, a select that
matches no series is ``empty`` for that policy alone, unknown seconds and staleness are
judged on its own series.

Distinct queries of one source are sent ``batch`` at a time as one request when the
source can (``answer_many``: Prometheus joins them with ``or``), each policy still taking
only its own query's series. The requests run on a small thread pool (a few in flight),
so one slow answer does not hold the others up. A source without whole answers (the activators, a
recording) is read per policy on the caller's thread, as before.

May import: the standard library and ``scaler.sources``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from scaler.sources import MetricSource, Reading


@dataclass(frozen=True)
class Read:
    """One policy's read in a pass: ``history`` for a warm start (step 1 s), else a tick's."""

    key: Any                               # the caller's name for it (a policy name)
    source: MetricSource
    query: str
    start: int
    end: int
    deadline: float
    select: tuple[tuple[str, str], ...] = ()
    history: bool = False


def _shareable(source: MetricSource) -> bool:
    return hasattr(source, "answer") and hasattr(source, "answer_history")


def group(reads: Iterable[Read]) -> tuple[list[list[Read]], list[Read]]:
    """(groups of reads that share one query, reads to make one by one)."""
    groups: dict[tuple, list[Read]] = {}
    alone: list[Read] = []
    for read in reads:
        if _shareable(read.source):
            groups.setdefault((id(read.source), read.query, read.end), []).append(read)
        else:
            alone.append(read)
    return list(groups.values()), alone


def _ask(reads: list[Read]) -> dict[Any, Reading | Exception]:
    try:
        return _ask_once(reads)
    except Exception as exc:    # a bug or a surprise: each policy's tick fails with it
        return {r.key: exc for r in reads}


def _ask_once(reads: list[Read]) -> dict[Any, Reading]:
    first = reads[0]
    start = min(r.start for r in reads)
    deadline = min(r.deadline for r in reads)
    if any(r.history for r in reads):
        # A warm start among them: one history query over the union serves the ticks too
        # (a stable window is far below a chunk), each judged as its own kind of read.
        answer = first.source.answer_history(first.query, start, first.end, 1.0,
                                             deadline=deadline)
    else:
        answer = first.source.answer(first.query, start, first.end, deadline=deadline)
    return {r.key: answer.reading(r.select, r.start, fresh=not r.history) for r in reads}


def _one(read: Read) -> Reading:
    if read.history:
        return read.source.history(read.query, read.start, read.end, deadline=read.deadline)
    return read.source.read(read.query, read.start, read.end, deadline=read.deadline)


# Below this many distinct queries due together, each is its own request: cheap at that
# scale, and a hostile or broken answer then reaches only its own policies.
MIN_BATCHING = 20


def batches(groups: list[list[Read]], size: int) -> list[list[list[Read]]]:
    """Groups of one source and one last second, ``size`` at a time, for sources that
    answer several queries in one request (``answer_many``) when at least MIN_BATCHING
    of them are due together; others one group each."""
    out: list[list[list[Read]]] = []
    open_: dict[tuple, list[list[Read]]] = {}
    together: dict[tuple, int] = {}
    for reads in groups:
        key = (id(reads[0].source), reads[0].end)
        together[key] = together.get(key, 0) + 1
    for reads in groups:
        first = reads[0]
        if (not hasattr(first.source, "answer_many") or size <= 1
                or together[(id(first.source), first.end)] < MIN_BATCHING):
            out.append([reads])
            continue
        key = (id(first.source), first.end)
        batch = open_.get(key)
        if batch is None or len(batch) >= size:
            batch = open_[key] = []
            out.append(batch)
        batch.append(reads)
    return out


def _ask_batch(batch: list[list[Read]]) -> dict[Any, Reading | Exception]:
    if len(batch) == 1:
        return _ask(batch[0])
    every = [r for reads in batch for r in reads]
    try:
        first = batch[0][0]
        answers = first.source.answer_many(
            [reads[0].query for reads in batch], min(r.start for r in every), first.end,
            deadline=min(r.deadline for r in every), history=any(r.history for r in every))
        return {r.key: answers[r.query].reading(r.select, r.start, fresh=not r.history)
                for r in every}
    except Exception as exc:    # a bug or a surprise: each policy's tick fails with it
        return {r.key: exc for r in every}


def read_all(reads: Iterable[Read], executor: Executor | None = None,
             on_query: Callable[[int], None] | None = None,
             batch: int = 1) -> dict[Any, Reading | Exception]:
    """Every read's :class:`Reading`, by key: one query per group (on ``executor`` when
    given), the others one by one. ``on_query`` is told the size of each shared query.
    A read that raised has its exception in place of a reading, for the caller to raise
    where that policy's failure is handled."""
    groups, alone = group(reads)
    requests = batches(groups, batch)
    out: dict[Any, Reading | Exception] = {}
    if executor is not None and len(requests) > 1:
        for part in executor.map(_ask_batch, requests):
            out.update(part)
    else:
        for one in requests:
            out.update(_ask_batch(one))
    if on_query is not None:
        for one in requests:
            on_query(sum(len(reads_) for reads_ in one))
    for read in alone:
        try:
            out[read.key] = _one(read)
        except Exception as exc:
            out[read.key] = exc
    return out
