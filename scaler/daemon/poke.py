"""``POST /v1/poke``: an activator holds a request for a policy at zero; tick it now.

The activator sends (scaler.activator.poke)::

    {"activator": "3f9c1a2b4d5e", "policy": "checkout", "namespace": "shop",
     "pending": 1, "in_flight": 1, "sent_at": 1764160000.125}

The handler only checks the body and queues it (answering 202), so the activator's
0.5 s budget is never spent here; the loop takes the queue when it wakes. As Knative's
autoscaler does with the stat an activator pushes, the loop records the poke's requests
in flight into the policy's windows and, if the policy's last decision was zero replicas,
decides at once instead of at its next tick: the scale write follows within milliseconds
of the first held request.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

POKE_PATH = "/v1/poke"
MAX_BODY = 4096
MAX_QUEUED = 1000


@dataclass(frozen=True)
class Poke:
    policy: str
    in_flight: int
    pending: int
    activator: str
    received: float          # the daemon's clock when it arrived (unix seconds)


def parse(body: bytes, received: float) -> Poke:
    """The poke in ``body``; ValueError says what is wrong with it."""
    if len(body) > MAX_BODY:
        raise ValueError(f"body over {MAX_BODY} bytes")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("body is not JSON") from None
    if not isinstance(doc, dict):
        raise ValueError("body is not a JSON object")
    policy = doc.get("policy")
    if not isinstance(policy, str) or not policy:
        raise ValueError("policy: a policy name is required")
    counts = {}
    for key in ("in_flight", "pending"):
        value = doc.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{key}: {value!r} is not a count (an integer >= 0)")
        counts[key] = value
    return Poke(policy=policy, activator=str(doc.get("activator", "")), received=received,
                **counts)


class PokeInbox:
    """Pokes waiting for the loop: filled by the HTTP server's threads, emptied by the loop,
    which ``wake`` (its sleep's event) interrupts."""

    def __init__(self, wake: threading.Event, known: Callable[[str], bool],
                 now: Callable[[], float]) -> None:
        self._wake = wake
        self._known = known
        self._now = now
        self._queue: deque[Poke] = deque(maxlen=MAX_QUEUED)
        self._lock = threading.Lock()
        self.received = 0

    def handle(self, body: bytes) -> tuple[int, str]:
        """The HTTP answer to a POST of ``body``: 202 queued, 400 malformed, 404 unknown."""
        try:
            poke = parse(body, self._now())
        except ValueError as exc:
            return 400, f"bad poke: {exc}"
        if not self._known(poke.policy):
            return 404, f"no policy named {poke.policy!r} with an activator block here"
        with self._lock:
            self._queue.append(poke)
            self.received += 1
        self._wake.set()
        return 202, "queued"

    def take(self) -> list[Poke]:
        with self._lock:
            pokes = list(self._queue)
            self._queue.clear()
        return pokes
