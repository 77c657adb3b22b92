"""``scaler tune``: replay every combination of a few policy knobs and keep the best.

Enters: a recording, the policy document to start from, ``--vary KEY=V1,V2,...`` (or a
range ``KEY=A..B/STEP``) per knob, a start-up delay and a ``--pick`` objective. Leaves:
each variant's cost (pod-seconds), unserved demand and cold starts, the Pareto front of the
three, and the picked variant as a policy document.

How it stays fast: every variant is the fast engine (``scaler.replay.engine.replay``), so
each one's figures are exactly what ``scaler replay`` would print for it. What variants
share is computed once, in parallel, before they run: the recording is parsed once; the
windows once per (tick, stable window, panic window, algorithm); the forecast once per
(prediction block, target value, tick). The variants then run on every core, in processes
forked after those arrays exist, so they read them without copying.

Validation comes first: each ``--vary`` key must be a policy key (an unknown one gets a
"did you mean"), and every variant is parsed by the policy validator itself, so a bad value
or combination is the validator's own error message, exit 2, before anything runs.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import math
import multiprocessing
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scaler.actuators.simulated import TooManyReplicas
from scaler.decide.pipeline import Decider
from scaler.policy import Policy, PolicyError, format_duration, parse_document, parse_duration
from scaler.policy.parse import tunable_keys
from scaler.replay import engine
from scaler.replay.report.summary import summarize

MAX_VARIANTS = 10_000
# What a variant's summary keeps (summary.json's keys).
FIGURES = ("pod_seconds", "under_provisioned_demand_seconds", "cold_start_episodes",
           "wasted_pod_seconds", "under_provisioned_share", "scaling_actions",
           "peak_replicas", "demand_seconds")
# The three the Pareto front and the objectives speak of, by their --pick names.
METRICS = {"pod-seconds": "pod_seconds", "unserved": "under_provisioned_demand_seconds",
           "cold-starts": "cold_start_episodes"}


class TuneError(ValueError):
    """Bad --vary or --pick input: one line that names the option and the value."""


# ------------------------------------------------------------------------------ --vary

@dataclass(frozen=True)
class Knob:
    """One ``--vary``: a key inside ``spec`` and the values to try, as YAML values."""

    key: str
    values: tuple[Any, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(show(v) for v in self.values)


def show(value: Any) -> str:
    """A value as the user would write it in the policy file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return str(value)


_RANGE = re.compile(r"^(?P<a>[^,]+?)\.\.(?P<b>[^,/]+?)(?:/(?P<step>[^,]+))?$")


def parse_vary(text: str) -> Knob:
    """``KEY=V1,V2,...`` or ``KEY=A..B/STEP`` (durations, numbers or percentages)."""
    key, sep, rest = text.partition("=")
    key = key.strip().removeprefix("spec.")
    if not sep or not key or not rest.strip():
        raise TuneError(f"--vary {text!r}: expected KEY=V1,V2,... or KEY=A..B/STEP "
                        "(e.g. stableWindow=30s..120s/15s)")
    known = tunable_keys()
    if key not in known:
        by_lower = {k.lower(): k for k in known}
        close = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.6)
        hint = f" (did you mean {by_lower[close[0]]}?)" if close else ""
        what = ("not a tuning knob: it says what is scaled, not how"
                if key.split(".")[0] in ("scaleTargetRef", "metric") else "not a policy key")
        raise TuneError(f"--vary {key}: {what}{hint}; keys: {', '.join(known)}")
    rest = rest.strip()
    match = _RANGE.match(rest)
    values = _range(key, match) if match else tuple(_scalar(key, t) for t in rest.split(","))
    if len(set(map(show, values))) != len(values):
        raise TuneError(f"--vary {key}: a value is listed twice")
    return Knob(key, values)


def _scalar(key: str, token: str) -> Any:
    import yaml

    token = token.strip()
    if not token:
        raise TuneError(f"--vary {key}: an empty value")
    try:
        return yaml.safe_load(token)
    except yaml.YAMLError:
        return token


def _range(key: str, m: re.Match) -> tuple[Any, ...]:
    a, b, step = m["a"].strip(), m["b"].strip(), m["step"]
    where = f"--vary {key}={m.group(0)}"
    if step is None:
        raise TuneError(f"{where}: a range needs a step: A..B/STEP (e.g. 30s..120s/15s)")
    step = step.strip()
    parts = (a, b, step)
    percent = all(p.endswith("%") for p in parts)
    if percent:
        parts = tuple(p[:-1] for p in parts)
    try:
        numbers = tuple(float(p) for p in parts)
        durations = False
    except ValueError:
        try:
            numbers = tuple(parse_duration(p) for p in parts)
            durations = True
        except ValueError:
            raise TuneError(f"{where}: the bounds and step must all be numbers, all "
                            "percentages or all durations") from None
    lo, hi, st = numbers
    if not (all(math.isfinite(x) for x in numbers) and st > 0 and hi >= lo):
        raise TuneError(f"{where}: needs A <= B and a step > 0")
    count = math.floor((hi - lo) / st + 1e-9) + 1
    if count > MAX_VARIANTS:
        raise TuneError(f"{where}: {count:,} values; at most {MAX_VARIANTS:,}")
    raw = [round(lo + i * st, 9) for i in range(count)]
    if durations:
        return tuple(format_duration(x) for x in raw)
    whole = not any("." in p or "e" in p.lower() for p in parts)
    if percent:
        return tuple(f"{int(x) if whole else x:g}%" for x in raw)
    return tuple(int(x) if whole else x for x in raw)


# --------------------------------------------------------------------------- variants

@dataclass(frozen=True)
class Variant:
    """One combination: its knob values (labels as the user wrote them), the document
    they make and the validated policy."""

    values: tuple[str, ...]
    document: dict
    policy: Policy
    current: bool = False     # the policy as given, unchanged


def set_key(document: dict, key: str, value: Any, source: str) -> None:
    """``spec.<key>`` = value in a document, making the blocks on the way."""
    block = document.setdefault("spec", {})
    parts = key.split(".")
    for part in parts[:-1]:
        inner = block.get(part)
        if inner is None:
            inner = block[part] = {}
        if not isinstance(inner, dict):
            raise TuneError(f"--vary {key}: {source}: spec.{part} is not a mapping")
        block = inner
    block[parts[-1]] = value


@dataclass(frozen=True)
class Grid:
    """The variants to run, and the combinations the validator rejected although each of
    their values is valid in another (``prediction.model=linear`` with
    ``prediction.minHistory=2``): skipped, and said so."""

    variants: list[Variant]
    skipped: list[str]


def variants(document: dict, source: str, knobs: list[Knob]) -> Grid:
    """Every combination of the knobs, validated; the given policy comes first (marked
    current) when it is not itself one of them. A value the validator rejects in every
    combination is an error: PolicyError with the validator's messages, each naming the
    --vary values that made it."""
    keys = [k.key for k in knobs]
    if len(set(keys)) != len(keys):
        raise TuneError(f"--vary: {', '.join(sorted({k for k in keys if keys.count(k) > 1}))} "
                        "given twice")
    total = math.prod(len(k.values) for k in knobs)
    if total > MAX_VARIANTS:
        raise TuneError(f"--vary: {total:,} combinations; at most {MAX_VARIANTS:,}")
    base, errors = parse_document(document, source)
    if errors:
        raise PolicyError(errors)
    out: list[Variant] = []
    seen: set[Policy] = set()
    rejected: list[tuple[list, list[str]]] = []
    usable: set[tuple[str, str]] = set()     # (key, label) valid in some combination
    for combo in itertools.product(*(zip(k.values, k.labels) for k in knobs)):
        changes = [(k.key, v, label) for k, (v, label) in zip(knobs, combo)]
        policy, problems = _parse_with(document, source, changes)
        if problems:
            rejected.append((changes, problems))
            continue
        usable.update((key, label) for key, _, label in changes)
        if policy in seen:
            continue   # e.g. horizon=60s,1m
        seen.add(policy)
        doc = copy.deepcopy(document)
        for key, value, _ in changes:
            set_key(doc, key, value, source)
        out.append(Variant(tuple(label for _, _, label in changes), doc, policy,
                           current=policy == base))
    for knob in knobs:
        for value, label in zip(knob.values, knob.labels):
            if (knob.key, label) in usable:
                continue
            # never valid: the validator's words, for this value alone if that is enough
            _, problems = _parse_with(document, source, [(knob.key, value, label)])
            if not problems:
                problems = next(p for c, p in rejected
                                if any((k, lab) == (knob.key, label) for k, _, lab in c))
            errors.extend(p for p in problems if p not in errors)
    if errors:
        raise PolicyError(errors)
    if base not in seen:
        current = tuple(_current_label(document, k.key) for k in knobs)
        out.insert(0, Variant(current, copy.deepcopy(document), base, current=True))
    skipped = [", ".join(f"{k}={label}" for k, _, label in changes) for changes, _ in rejected]
    return Grid(out, skipped)


def _parse_with(document: dict, source: str,
                changes: list[tuple[str, Any, str]]) -> tuple[Policy | None, list[str]]:
    doc = copy.deepcopy(document)
    for key, value, _ in changes:
        set_key(doc, key, value, source)
    where = f"{source} with --vary {', '.join(f'{k}={label}' for k, _, label in changes)}"
    return parse_document(doc, where)


def _current_label(document: dict, key: str) -> str:
    block: Any = document.get("spec") or {}
    for part in key.split("."):
        block = block.get(part) if isinstance(block, dict) else None
    return "(default)" if block is None else show(block)


# -------------------------------------------------------------------------------- run

@dataclass
class Outcome:
    """Every variant's figures (FIGURES, in variant order), and how long it took."""

    variants: list[Variant]
    figures: list[dict]
    seconds: float
    processes: int
    shared_windows: int
    shared_forecasts: int


# Set in the parent before a pool forks, read by the workers (copy-on-write, no pickling).
_SHARED: dict[str, Any] = {}


def _window_key(p: Policy) -> tuple:
    return (p.tick_interval, p.stable_window, p.panic_window, p.window_algorithm)


def _forecast_key(p: Policy) -> tuple | None:
    if not p.prediction.enabled:
        return None
    return (p.tick_interval, p.prediction, p.target_value)


def _ticks(policy: Policy) -> np.ndarray:
    return engine.tick_times(_SHARED["times"], policy.tick_interval)


def _windows_job(policy: Policy) -> tuple:
    return engine._windows(policy, _SHARED["times"], _SHARED["values"], _ticks(policy))


def _forecast_job(policy: Policy) -> tuple:
    return engine._forecast(policy, Decider(policy), _SHARED["times"], _SHARED["values"],
                            _ticks(policy))


def _variant_job(i: int) -> tuple[int, dict | str]:
    """Variant i's figures, or why it could not be replayed."""
    policy = _SHARED["policies"][i]
    try:
        result = engine.replay(policy, _SHARED["times"], _SHARED["values"],
                               _SHARED["startup_delay"],
                               windows=_SHARED["windows"][_window_key(policy)],
                               forecast=_SHARED["forecasts"].get(_forecast_key(policy)))
    except TooManyReplicas as exc:
        return i, str(exc)
    summary = summarize(result)
    return i, {k: summary[k] for k in FIGURES}


def run(found: list[Variant], times: np.ndarray, values: np.ndarray, startup_delay: float,
        *, jobs: int | None = None, progress: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None) -> Outcome:
    """Replay every variant; ``jobs`` processes (default: every core; 1: in this one)."""
    import time

    now = clock or time.perf_counter
    started = now()
    jobs = max(1, jobs or os.cpu_count() or 1)
    policies = [v.policy for v in found]
    by_window = {_window_key(p): p for p in policies}
    by_forecast = {k: p for p in policies if (k := _forecast_key(p)) is not None}
    _SHARED.update(times=times, values=values, startup_delay=startup_delay,
                   policies=policies, windows={}, forecasts={})
    # A forecast costs about three replays: weigh it so in the progress bar.
    total = len(by_window) + 3 * len(by_forecast) + len(policies)
    done = 0

    def advance(weight: int) -> None:
        nonlocal done
        done += weight
        if progress:
            progress(done / total)

    try:
        shared = [("windows", k, _windows_job, p, 1) for k, p in by_window.items()]
        shared += [("forecasts", k, _forecast_job, p, 3) for k, p in by_forecast.items()]
        outs = _pool_map(lambda s: s[2](s[3]), shared, jobs, lambda s: advance(s[4]))
        for (kind, key, *_), out in zip(shared, outs):
            _SHARED[kind][key] = out
        counts = len(_SHARED["windows"]), len(_SHARED["forecasts"])
        # forked after the shared arrays exist: the workers read them in place
        figures = _pool_map(_variant_job, list(range(len(policies))), jobs,
                            lambda _: advance(1))
    finally:
        _SHARED.clear()
    for v, (_, f) in zip(found, figures):
        if isinstance(f, str):
            raise TuneError(f"variant {', '.join(v.values)}: {f}")
    return Outcome(found, [f for _, f in figures], now() - started,
                   min(jobs, len(policies)), *counts)


def _pool_map(fn: Callable[[Any], Any], items: list, jobs: int,
              done: Callable[[Any], None]) -> list:
    """[fn(item) for item in items]: in this process, or in a pool forked now, whose
    workers see _SHARED (and fn) as they are at this moment."""
    if jobs == 1 or len(items) <= 1:
        out = []
        for item in items:
            out.append(fn(item))
            done(item)
        return out
    _SHARED["job"] = (fn, items)
    results: list = [None] * len(items)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(min(jobs, len(items))) as pool:
        for i, result in pool.imap_unordered(_call_job, range(len(items))):
            results[i] = result
            done(items[i])
    return results


def _call_job(i: int) -> tuple[int, Any]:
    fn, items = _SHARED["job"]
    return i, fn(items[i])


# ----------------------------------------------------------------------- front, pick

def pareto_front(figures: list[dict]) -> list[int]:
    """Indices of the variants no other beats on pod-seconds, unserved demand and cold
    starts at once (no worse on all three, better on one)."""
    points = np.array([[f[m] for m in METRICS.values()] for f in figures], dtype=np.float64)
    front = []
    for i, p in enumerate(points):
        dominated = np.any(np.all(points <= p, axis=1) & np.any(points < p, axis=1))
        if not dominated:
            front.append(i)
    return front


@dataclass(frozen=True)
class Limit:
    metric: str        # a METRICS name
    value: float
    unit: str          # "" absolute, "%" share of the demand (unserved), "x" times current

    def bound(self, current: dict) -> float:
        if self.unit == "x":
            return self.value * current[METRICS[self.metric]]
        if self.unit == "%":
            return self.value / 100.0 * current["demand_seconds"]
        return self.value

    def __str__(self) -> str:
        return f"{self.metric}<={show(self.value)}{self.unit}"


@dataclass(frozen=True)
class Objective:
    """``least-METRIC[:LIMIT,...]``: the variant with the least METRIC among those within
    every limit; ties go to less unserved demand, then fewer cold starts, then fewer
    pod-seconds, then the earlier variant."""

    least: str
    limits: tuple[Limit, ...] = field(default_factory=tuple)

    def __str__(self) -> str:
        head = f"least-{self.least}"
        return head + (":" + ",".join(map(str, self.limits)) if self.limits else "")

    def pick(self, figures: list[dict], current: int) -> int | None:
        base = figures[current]
        ok = [i for i, f in enumerate(figures)
              if all(f[METRICS[lim.metric]] <= lim.bound(base) * (1 + 1e-12) for lim in
                     self.limits)]
        if not ok:
            return None
        order = [self.least] + [m for m in ("unserved", "cold-starts", "pod-seconds")
                                if m != self.least]
        return min(ok, key=lambda i: (*(figures[i][METRICS[m]] for m in order), i))


DEFAULT_OBJECTIVE = "least-pod-seconds:unserved<=1x,cold-starts<=1x"
_LIMIT = re.compile(r"^(?P<metric>[a-z-]+)<=(?P<value>[0-9.eE+]+)(?P<unit>%|x)?$")


def parse_objective(text: str) -> Objective:
    """See :class:`Objective` and :class:`Limit`; e.g. ``least-pod-seconds:unserved<=1%``."""
    names = ", ".join(METRICS)
    head, _, tail = text.strip().partition(":")
    if not head.startswith("least-") or head[6:] not in METRICS:
        raise TuneError(f"--pick {text!r}: starts with least-METRIC, METRIC one of {names} "
                        f"(e.g. {DEFAULT_OBJECTIVE})")
    limits = []
    for part in filter(None, (p.strip() for p in tail.split(","))):
        m = _LIMIT.match(part.replace(" ", ""))
        if not m or m["metric"] not in METRICS:
            raise TuneError(f"--pick {text!r}: {part!r} is not METRIC<=VALUE (METRIC one of "
                            f"{names}; VALUE a number, N% of the demand for unserved, or Nx "
                            "times the current policy)")
        try:
            value = float(m["value"])
        except ValueError:
            raise TuneError(f"--pick {text!r}: {m['value']!r} is not a number") from None
        unit = m["unit"] or ""
        if unit == "%" and m["metric"] != "unserved":
            raise TuneError(f"--pick {text!r}: {part!r}: N% is a share of the demand, for "
                            "unserved only; use Nx for times the current policy")
        limits.append(Limit(m["metric"], value, unit))
    return Objective(head[6:], tuple(limits))


# ------------------------------------------------------------------------ outputs

def variants_csv(knobs: list[Knob], outcome: Outcome, front: set[int],
                 picked: int | None) -> str:
    header = ["variant", *(k.key for k in knobs), *FIGURES, "pareto", "current", "picked"]
    lines = [",".join(header)]
    for i, (v, f) in enumerate(zip(outcome.variants, outcome.figures)):
        cells = [str(i), *(_csv(x) for x in v.values)]
        cells += [f"{f[k]:.6f}" if isinstance(f[k], float) else str(f[k]) for k in FIGURES]
        cells += [str(int(i in front)), str(int(v.current)), str(int(i == picked))]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def _csv(text: str) -> str:
    return f'"{text}"' if "," in text or '"' in text else text


def policy_yaml(variant: Variant, header: list[str]) -> str:
    import yaml

    body = yaml.safe_dump(variant.document, sort_keys=False, default_flow_style=False)
    return "".join(f"# {line}\n" for line in header) + body


def with_values(variant: Variant, knobs: list[Knob]) -> str:
    return ", ".join(f"{k.key}={v}" for k, v in zip(knobs, variant.values))



def document_of(policy: Policy) -> tuple[dict, str]:
    """The YAML document a loaded policy was parsed from (``policy.source`` is
    ``FILE: document N``), and that source."""
    import yaml

    path, _, number = policy.source.rpartition(": document ")
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f.read()) if d is not None]
    return docs[int(number) - 1], policy.source


def format_table(knobs: list[Knob], outcome: Outcome, front: list[int], current: int,
                 picked: int | None, objective: Objective) -> str:
    """The Pareto front (cheapest first), then the current policy if it is not on it;
    changes are against the current policy; ``*`` marks the picked variant."""
    figures = outcome.figures
    base = figures[current]
    rows = [(" ", *(k.key for k in knobs), "pod-seconds", "unserved demand-s", "cold starts",
             "")]
    order = sorted(front, key=lambda i: (figures[i]["pod_seconds"], i))
    if current not in front:
        order.append(current)
    for i in order:
        f = figures[i]
        notes = []
        if i == current:
            notes.append("current" + ("" if i in front else ", not on the front"))
        rows.append(("*" if i == picked else " ", *outcome.variants[i].values,
                     _with_change(f["pod_seconds"], base["pod_seconds"], "{:,.0f}"),
                     _with_change(f["under_provisioned_demand_seconds"],
                                  base["under_provisioned_demand_seconds"], "{:,.1f}"),
                     _with_change(f["cold_start_episodes"], base["cold_start_episodes"],
                                  "{:,}"),
                     "; ".join(notes)))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    numeric = {len(knobs) + 1, len(knobs) + 2, len(knobs) + 3}
    lines = []
    for r in rows:
        cells = [cell.rjust(w) if c in numeric else cell.ljust(w)
                 for c, (cell, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
    if picked is None:
        lines.append(f"\nno variant meets {objective}")
    else:
        lines.append(f"\n* picked by {objective}: "
                     f"{with_values(outcome.variants[picked], knobs)}")
    return "\n".join(lines)


def _with_change(value: float, base: float, fmt: str) -> str:
    text = fmt.format(value)
    if value == base:
        return text
    if not base:
        return f"{text} (new)"
    return f"{text} ({(value - base) / base:+.1%})"
