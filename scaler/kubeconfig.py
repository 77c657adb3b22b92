"""Where the Kubernetes API is and how to authenticate to it: a kubeconfig file, or the pod's
service account. Shared by the daemon's client (``scaler.kube``) and the activator's lean
list+watch, so both read credentials the same way.

Lean on purpose: PyYAML and the standard library only. The kubernetes package's own loaders
import its whole client (about 36 MiB here), which the activator's memory budget cannot
carry; this module is what they do that scaler needs:

* a kubeconfig named by ``--kubeconfig`` or ``$KUBECONFIG`` (a ``:``-separated list is
  merged as kubectl merges it: the first file to define a name wins), its current context's
  cluster and user: ``server``, ``certificate-authority[-data]``,
  ``insecure-skip-tls-verify``, ``tls-server-name``; ``token``, ``tokenFile``,
  ``client-certificate[-data]`` and ``client-key[-data]``, and ``exec`` credential plugins
  (client.authentication.k8s.io ExecCredential, re-run when the token expires);
* otherwise the in-cluster service account: ``$KUBERNETES_SERVICE_HOST``/``_PORT``, the
  projected token (re-read every minute, so rotation needs nothing) and ``ca.crt``.

Refused with a message that says why: basic auth (removed from Kubernetes in 1.19) and
``auth-provider`` plugins (replaced by exec plugins). Errors are :class:`KubeconfigError`,
one line naming the file and the key.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REFRESH = 60.0          # seconds between re-reads of a token file (kubelet rotates it)
EXEC_EARLY = 10.0             # re-run an exec plugin this long before its token expires
EXEC_TIMEOUT = 30.0


class KubeconfigError(Exception):
    """The Kubernetes configuration cannot be used; the message says where and why."""


@dataclass
class Credentials:
    """The API server's address and how to authenticate to it.

    File names are real files (inline ``*-data`` is written to private temporary files),
    because both urllib3 and :mod:`ssl` load certificates from files.
    """

    server: str
    ca_file: str | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None
    token_file: str | None = None
    exec_plugin: dict | None = None
    origin: str = ""                      # where it came from, for messages
    _cached: tuple[float, str | None] = field(default=(0.0, None), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def https(self) -> bool:
        return self.server.startswith("https://")

    def authorization(self) -> str | None:
        """The Authorization header value now ("Bearer …"), or None for none: a token file
        is re-read every minute and an exec plugin re-run shortly before its token expires."""
        if self.token:
            return f"Bearer {self.token}"
        if not self.token_file and not self.exec_plugin:
            return None
        with self._lock:
            until, value = self._cached
            if value is not None and time.monotonic() < until:
                return value
            if self.exec_plugin:
                token, expires = _run_exec(self.exec_plugin, self.origin)
                left = (expires - time.time() - EXEC_EARLY) if expires else 3600.0
                value = f"Bearer {token}"
                self._cached = (time.monotonic() + max(0.0, left), value)
            else:
                value = f"Bearer {_read_token(self.token_file)}"
                self._cached = (time.monotonic() + TOKEN_REFRESH, value)
            return value

    def ssl_context(self) -> ssl.SSLContext | None:
        """An SSL context for the server (None for plain http): its CA or the system's,
        the client certificate, and no verification only if the kubeconfig asked for that."""
        if not self.https:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_file and self.key_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


def kubeconfig_paths(path: str | None = None, *,
                     environ: dict[str, str] | None = None) -> list[Path]:
    """The kubeconfig files kubectl would read: ``path`` (--kubeconfig), else every file of
    ``$KUBECONFIG`` (a path list), else ``~/.kube/config`` when it exists; else none (then
    the in-cluster service account)."""
    env = os.environ if environ is None else environ
    if path:
        return [Path(path).expanduser()]
    listed = [p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        # kubectl skips the files of the list that do not exist, unless none does.
        paths = [Path(n).expanduser() for n in listed]
        return [p for p in paths if p.exists()] or paths
    home = env.get("HOME")     # as kubectl: $HOME/.kube/config, when $HOME is set
    default = Path(home) / ".kube" / "config" if home else None
    return [default] if default is not None and default.is_file() else []


def load(path: str | None = None, *, context: str | None = None,
         environ: dict[str, str] | None = None,
         service_account: Path = SERVICE_ACCOUNT_DIR) -> Credentials:
    """Credentials as kubectl finds them: ``path``, else ``$KUBECONFIG``, else
    ``~/.kube/config``, else the in-cluster service account; ``context`` instead of the
    current context."""
    env = os.environ if environ is None else environ
    paths = kubeconfig_paths(path, environ=env)
    if paths:
        return from_kubeconfig(paths, context=context)
    if context:
        raise KubeconfigError(f"--context {context}: no kubeconfig (give --kubeconfig, set "
                              "KUBECONFIG or create ~/.kube/config)")
    if env.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster(env, service_account)
    raise KubeconfigError("no Kubernetes configuration: give --kubeconfig or set KUBECONFIG, "
                          "or create ~/.kube/config (kind and minikube write it), or run in a "
                          "pod (KUBERNETES_SERVICE_HOST is not set)")


def context_namespace(path: str | None = None, *, context: str | None = None,
                      environ: dict[str, str] | None = None) -> str | None:
    """The namespace of the (current, or named) kubeconfig context, as kubectl uses it;
    None without a kubeconfig or when the context sets none."""
    paths = kubeconfig_paths(path, environ=environ)
    if not paths:
        return None
    merged, current = _merge(paths)
    name = context or (current[0] if current else None)
    entry = merged["contexts"].get(name) if name else None
    if entry is None:
        return None
    ns = (entry[0].get("context") or {}).get("namespace")
    return ns if isinstance(ns, str) and ns else None


def in_cluster(env: dict[str, str], directory: Path = SERVICE_ACCOUNT_DIR) -> Credentials:
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise KubeconfigError("in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT "
                              "must both be set")
    token, ca = directory / "token", directory / "ca.crt"
    for f in (token, ca):
        if not f.is_file():
            raise KubeconfigError(f"in-cluster: {f} is missing (is the service account token "
                                  "mounted? automountServiceAccountToken must not be false)")
    if ":" in host:
        host = f"[{host}]"
    return Credentials(server=f"https://{host}:{port}", ca_file=str(ca), token_file=str(token),
                       origin=f"the service account in {directory}")


def _merge(paths: list[Path]) -> tuple[dict, tuple[str, Path] | None]:
    merged: dict[str, dict[str, tuple[dict, Path]]] = {"clusters": {}, "users": {},
                                                        "contexts": {}}
    current: tuple[str, Path] | None = None
    for path in paths:
        doc = _read_yaml(path)
        if current is None and doc.get("current-context"):
            current = (str(doc["current-context"]), path)
        for section in merged:
            items = doc.get(section) or []
            if not isinstance(items, list):
                raise KubeconfigError(f"{path}: {section}: expected a list")
            for item in items:
                if isinstance(item, dict) and isinstance(item.get("name"), str):
                    merged[section].setdefault(item["name"], (item, path))
    return merged, current


def from_kubeconfig(paths: list[Path], *, context: str | None = None) -> Credentials:
    merged, current = _merge(paths)
    where = ", ".join(str(p) for p in paths)
    if context is not None:
        if context not in merged["contexts"]:
            raise KubeconfigError(f"{where}: --context {context}: no such context (found: "
                                  f"{', '.join(sorted(merged['contexts'])) or 'none'})")
        current = (context, merged["contexts"][context][1])
    if current is None:
        raise KubeconfigError(f"{where}: current-context is not set (or give --context)")
    name, cpath = current
    context = _entry(merged, "contexts", name, cpath, "context")
    cluster_name, user_name = context.get("cluster"), context.get("user")
    if not cluster_name:
        raise KubeconfigError(f"{cpath}: context {name!r} names no cluster")
    cluster, kpath = _lookup(merged, "clusters", cluster_name, "cluster", cpath)
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("http://", "https://")):
        raise KubeconfigError(f"{kpath}: cluster {cluster_name!r}: server {server!r} is not an "
                              "http(s) URL")
    if cluster.get("proxy-url"):
        raise KubeconfigError(f"{kpath}: cluster {cluster_name!r}: proxy-url is not supported")
    creds = Credentials(
        server=server.rstrip("/"),
        ca_file=_file(cluster, "certificate-authority", kpath, "ca"),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        tls_server_name=cluster.get("tls-server-name") or None,
        origin=str(kpath))
    if user_name:
        user, upath = _lookup(merged, "users", user_name, "user", cpath)
        _user(creds, user, user_name, upath)
    return creds


def _user(creds: Credentials, user: dict, name: str, path: Path) -> None:
    where = f"{path}: user {name!r}"
    if user.get("username") or user.get("password"):
        raise KubeconfigError(f"{where}: basic auth (username/password) is not supported; "
                              "Kubernetes removed it in 1.19")
    if user.get("auth-provider"):
        raise KubeconfigError(f"{where}: auth-provider plugins are not supported; use an exec "
                              "credential plugin")
    creds.token = user.get("token") or None
    token_file = user.get("tokenFile")
    if token_file:
        creds.token_file = str(_relative(token_file, path))
    creds.cert_file = _file(user, "client-certificate", path, "crt")
    creds.key_file = _file(user, "client-key", path, "key")
    if bool(creds.cert_file) != bool(creds.key_file):
        raise KubeconfigError(f"{where}: client-certificate and client-key go together")
    plugin = user.get("exec")
    if plugin:
        if not isinstance(plugin, dict) or not plugin.get("command"):
            raise KubeconfigError(f"{where}: exec: a command is required")
        creds.exec_plugin = dict(plugin, _dir=str(path.parent))
        creds.origin = f"{where}: exec"


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise KubeconfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError:
        raise KubeconfigError(f"{path}: not valid YAML") from None
    if not isinstance(doc, dict):
        raise KubeconfigError(f"{path}: not a kubeconfig (expected a mapping)")
    return doc


def _entry(merged: dict, section: str, name: str, path: Path, key: str) -> dict:
    found = merged[section].get(name)
    if found is None:
        raise KubeconfigError(f"{path}: {section}: no entry named {name!r}")
    body = found[0].get(key)
    if not isinstance(body, dict):
        raise KubeconfigError(f"{found[1]}: {section}: {name!r} has no {key}")
    return body


def _lookup(merged: dict, section: str, name: str, key: str, path: Path) -> tuple[dict, Path]:
    body = _entry(merged, section, name, path, key)
    return body, merged[section][name][1]


def _relative(name: str, kubeconfig: Path) -> Path:
    p = Path(name).expanduser()
    return p if p.is_absolute() else kubeconfig.parent / p


def _file(section: dict, key: str, path: Path, suffix: str) -> str | None:
    """A certificate or key: the named file, or ``<key>-data`` written to a private file."""
    data = section.get(f"{key}-data")
    if data:
        try:
            raw = base64.b64decode(data, validate=True)
        except (ValueError, TypeError):
            raise KubeconfigError(f"{path}: {key}-data is not base64") from None
        return _private_file(raw, suffix)
    name = section.get(key)
    if not name:
        return None
    file = _relative(str(name), path)
    if not file.is_file():
        raise KubeconfigError(f"{path}: {key}: {file} does not exist")
    return str(file)


_written: list[str] = []


def _private_file(data: bytes, suffix: str) -> str:
    fd, name = tempfile.mkstemp(prefix="scaler-kube-", suffix=f".{suffix}")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    if not _written:
        atexit.register(_remove_written)
    _written.append(name)
    return name


def _remove_written() -> None:
    for name in _written:
        try:
            os.unlink(name)
        except OSError:
            pass


def _read_token(name: str | None) -> str:
    try:
        token = Path(name or "").read_text().strip()
    except OSError as exc:
        raise KubeconfigError(f"token file {name}: {exc.strerror or exc}") from None
    if not token:
        raise KubeconfigError(f"token file {name} is empty")
    return token


def _run_exec(plugin: dict, origin: str) -> tuple[str, float | None]:
    """Run an exec credential plugin; its token and when it expires (unix seconds)."""
    api_version = plugin.get("apiVersion") or "client.authentication.k8s.io/v1"
    env = dict(os.environ)
    for item in plugin.get("env") or []:
        if isinstance(item, dict) and "name" in item:
            env[str(item["name"])] = str(item.get("value", ""))
    env["KUBERNETES_EXEC_INFO"] = json.dumps({
        "apiVersion": api_version, "kind": "ExecCredential", "spec": {"interactive": False}})
    command = str(plugin["command"])
    if "/" in command and not os.path.isabs(command):
        command = str(Path(plugin["_dir"]) / command)
    try:
        done = subprocess.run([command, *map(str, plugin.get("args") or [])], env=env,
                              capture_output=True, text=True, timeout=EXEC_TIMEOUT, check=False,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KubeconfigError(f"{origin}: {command}: {exc}") from None
    if done.returncode != 0:
        raise KubeconfigError(f"{origin}: {command} exited {done.returncode}: "
                              f"{done.stderr.strip()[:200]}")
    try:
        status: Any = json.loads(done.stdout)["status"]
        token = status["token"]
    except (ValueError, KeyError, TypeError):
        raise KubeconfigError(f"{origin}: {command} did not print an ExecCredential with "
                              "status.token") from None
    expires = status.get("expirationTimestamp")
    when = None
    if expires:
        try:
            when = datetime.fromisoformat(str(expires).replace("Z", "+00:00")).timestamp()
        except ValueError:
            when = None
    return str(token), when
