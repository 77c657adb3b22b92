"""The fault matrix: for each fault injected into a running daemon, what was expected, what
was seen, and the three counts that must stay 0 — wrong scale-downs, stale writes,
overlapping writers — measured from the fake API server's request record.

tests/test_fault_matrix.py adds rows; tests/conftest.py prints the table at the end of
the run (``format_table``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from support.fakekube import FakeKubeAPIServer, RecordedRequest


@dataclass
class Row:
    fault: str
    expected: str
    seen: str
    wrong_scale_downs: int = 0
    stale_writes: int = 0
    overlapping_writers: int = 0
    held: bool = True          # the expectation held

    @property
    def ok(self) -> bool:
        return self.held and not (self.wrong_scale_downs or self.stale_writes
                                  or self.overlapping_writers)


ROWS: list[Row] = []


def scale_writes(server: FakeKubeAPIServer, name: str) -> list[RecordedRequest]:
    """Successful writes of ``name``'s scale subresource, oldest first."""
    return [r for r in server.writes("Deployment", name) if r.subresource == "scale"]


def replicas_written(write: RecordedRequest) -> int:
    return int(((write.body or {}).get("spec") or {}).get("replicas", -1))


def wrong_scale_downs(writes: list[RecordedRequest], right: int) -> int:
    """Writes that set fewer replicas than the load needed all along."""
    return sum(1 for w in writes if replicas_written(w) < right)


def stale_writes(writes: list[RecordedRequest]) -> int:
    """Writes that did not carry the resourceVersion they were decided on (a blind
    overwrite of whatever changed since the read)."""
    return sum(1 for w in writes
               if not ((w.body or {}).get("metadata") or {}).get("resourceVersion"))


def writer(request: RecordedRequest) -> str:
    """The daemon replica behind a request: the "(identity)" in its User-Agent."""
    match = re.search(r"\(([^)]*)\)", request.user_agent)
    return match.group(1) if match else request.user_agent


def overlapping_writers(server: FakeKubeAPIServer, writes: list[RecordedRequest]) -> int:
    """Scale writes made by a replica that did not hold the Lease at that moment (or, with
    no Lease, by a second replica)."""
    leases = [w for w in server.writes("Lease")]
    if not leases:
        return max(0, len({writer(w) for w in writes}) - 1)
    bad = 0
    for w in writes:
        before = [lw for lw in leases if lw.answered and lw.answered <= w.received]
        holder = ((before[-1].body or {}).get("spec") or {}).get("holderIdentity") \
            if before else ""
        bad += holder != writer(w)
    return bad


def format_table(rows: list[Row]) -> str:
    head = ("fault", "expected", "seen", "wrong scale-downs", "stale writes",
            "overlapping writers", "ok")
    body = [(r.fault, r.expected, r.seen, str(r.wrong_scale_downs), str(r.stale_writes),
             str(r.overlapping_writers), "yes" if r.ok else "NO") for r in rows]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    sep = "-+-".join("-" * w for w in widths)
    lines = [" | ".join(c.ljust(w) for c, w in zip(head, widths)), sep]
    lines += [" | ".join(c.ljust(w) for c, w in zip(line, widths)) for line in body]
    return "\n".join(lines)
