"""Policies from ScalingPolicy objects (scaler.dev/v1alpha1) in one namespace.

``--policy-source kubernetes`` reads them with list calls every few seconds (get, list and
watch are what the Role grants; a list every 5 s of a handful of objects costs the API
server less than keeping a watch's cache warm). Each object is validated with the very
parser the policy files go through; its ``spec`` is a policy file's ``spec``.

* Names: a ScalingPolicy ``checkout`` in namespace ``shop`` is policy ``shop/checkout``
  (its metrics' ``policy`` label too). Policy files' names have no ``/``, so the two
  never collide.
* A ScalingPolicy scales only in its own namespace: ``scaleTargetRef.namespace``
  defaults to it, and any other namespace is refused (whoever may create a
  ScalingPolicy in one namespace must not scale another's workloads).
* An invalid object (one the API server let through: a rule its schema cannot hold, or
  an object written before the CRD had the rule) does not run; if an earlier
  generation of it ran, that one keeps running. Its ``Ready`` condition says why, naming
  the key, as ``scaler validate`` would.
* Two policies may not drive one target (nor route one host): the policy files win,
  then the older object.

The status writer (``scaler.daemon.status``) reads :attr:`PolicyObjects.states` to write
each object's ``Ready`` condition and observedGeneration.
"""

from __future__ import annotations

import copy
import re
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from scaler.policy import Policy, PolicyError, check_unique, parse_document
from scaler.policy import schema

LIST_INTERVAL = 5.0     # seconds between two lists of the objects
REQUEST_TIMEOUT = 5.0


def policy_name(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def collection_path(namespace: str) -> str:
    return f"/apis/{schema.API_VERSION}/namespaces/{namespace}/{schema.PLURAL}"


@dataclass
class ObjectState:
    """One ScalingPolicy as last listed, and what runs of it."""

    namespace: str
    name: str
    uid: str
    generation: int
    obj: dict                                  # the object as listed (status PUTs start here)
    running: Policy | None = None              # the version that runs, possibly older
    running_generation: int | None = None
    problem: tuple[str, str] | None = None     # (reason, message) when this generation
                                               # does not run

    @property
    def policy_name(self) -> str:
        return policy_name(self.namespace, self.name)


@dataclass
class PolicyObjects:
    """Lists the ScalingPolicy objects of ``namespace`` and validates them."""

    client: Any                                          # scaler.kube.KubeClient
    namespace: str
    others: Callable[[], list[Policy]] = lambda: []     # the policy files' (they win)
    log: Any = None
    states: dict[str, ObjectState] = field(default_factory=dict)
    error: str | None = None                             # why the last list failed
    lock: threading.Lock = field(default_factory=threading.Lock)

    def poll(self) -> list[Policy] | None:
        """List, validate, and return the policies that run now; None when the list failed
        (then what runs keeps running)."""
        from scaler.kube import TransportError

        try:
            resp = self.client.request("GET", collection_path(self.namespace),
                                       timeout=REQUEST_TIMEOUT)
        except TransportError as exc:
            return self._failed(f"{exc.reason}: {exc.detail}")
        if resp.status != 200 or not isinstance(resp.body, dict):
            message = resp.body.get("message") if isinstance(resp.body, dict) else resp.body
            return self._failed(f"HTTP {resp.status} listing {schema.PLURAL} in "
                                f"{self.namespace}: {message}")
        if self.error is not None and self.log:
            self.log.info("scalingpolicies readable again", after=self.error)
        self.error = None
        return self.update(resp.body.get("items") or [])

    def _failed(self, why: str) -> None:
        if why != self.error and self.log:
            self.log.error("cannot list scalingpolicies; keeping the running ones",
                           namespace=self.namespace, detail=why)
        self.error = why
        return None

    def update(self, items: list[dict]) -> list[Policy]:
        """The new set of objects: validate each, keep an older good version of an invalid
        one, settle conflicts; the policies that run."""
        with self.lock:
            states: dict[str, ObjectState] = {}
            for obj in sorted(items, key=_age):
                meta = obj.get("metadata") or {}
                key = policy_name(meta.get("namespace", self.namespace), meta.get("name", ""))
                old = self.states.get(key)
                state = ObjectState(meta.get("namespace", self.namespace), meta.get("name", ""),
                                    meta.get("uid", ""), int(meta.get("generation") or 0), obj)
                if old is not None and old.uid == state.uid:
                    state.running, state.running_generation = old.running, old.running_generation
                policy, errors = to_policy(obj, self.namespace)
                if policy is None:
                    state.problem = ("InvalidSpec", "; ".join(errors))
                    if self.log and (old is None or old.problem != state.problem):
                        self.log.error("invalid ScalingPolicy", policy=key, errors=errors,
                                       running_generation=state.running_generation)
                else:
                    state.running, state.running_generation = policy, state.generation
                states[key] = state
            self._settle(states)
            self.states = states
            return [s.running for s in states.values() if s.running is not None]

    def _settle(self, states: dict[str, ObjectState]) -> None:
        """Files first, then objects oldest first: one that claims a target (or a host)
        already claimed does not run."""
        accepted = list(self.others())
        for state in states.values():
            if state.running is None:
                continue
            try:
                check_unique([*accepted, state.running])
            except PolicyError as exc:
                state.problem = ("Conflict", "; ".join(_strip(e) for e in exc.errors))
                state.running = state.running_generation = None
                continue
            accepted.append(state.running)


def to_policy(obj: dict, namespace: str) -> tuple[Policy | None, list[str]]:
    """A ScalingPolicy object as a policy named ``namespace/name``, or the errors that
    stop it, each naming the key (``spec.stableWindow: '5s' is out of range ...``)."""
    meta = obj.get("metadata") or {}
    ns, name = meta.get("namespace", namespace), meta.get("name", "")
    spec = copy.deepcopy(obj.get("spec"))
    errors: list[str] = []
    if isinstance(spec, dict) and isinstance(spec.get("scaleTargetRef"), dict):
        ref = spec["scaleTargetRef"]
        if ref.setdefault("namespace", ns) != ns:
            errors.append(f"spec.scaleTargetRef.namespace: {ref['namespace']!r} is not the "
                          f"ScalingPolicy's own namespace {ns!r} (a ScalingPolicy scales "
                          "only in its namespace)")
    doc = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
           "metadata": {"name": name}, "spec": spec}
    where = f"scalingpolicy {ns}/{name}"
    policy, problems = parse_document(doc, where, api_version=schema.API_VERSION)
    errors += [_strip(e) for e in problems]
    if errors or policy is None:
        return None, errors
    return replace(policy, name=policy_name(ns, name)), []


_WHERE = re.compile(r"^scalingpolicy [^ :]+(?: \([^)]*\))?: ")


def _strip(error: str) -> str:
    """An error without its ``scalingpolicy ns/name (name): `` prefix (the condition sits
    on the object already)."""
    return _WHERE.sub("", error, count=1)


def _age(obj: dict) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("creationTimestamp", "")), str(meta.get("name", "")))
