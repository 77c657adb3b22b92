"""Credentials for the Kubernetes API, read once for the daemon's client and the activator's
lean list+watch: kubeconfig shapes, exec plugins, token rotation, the service account, the
errors, and both clients against a real TLS server that checks a client certificate."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from scaler import kubeconfig
from scaler.activator.kubeapi import KubeAPI, KubeAPIError
from scaler.kube import KubeClient
from scaler.kubeconfig import KubeconfigError, load


def write(path: Path, *, server="https://10.0.0.1:6443", cluster=None, user=None,
          current="c", extra=None) -> Path:
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": current,
           "clusters": [{"name": "k", "cluster": {"server": server, **(cluster or {})}}],
           "users": [{"name": "u", "user": user or {}}],
           "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]}
    doc.update(extra or {})
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_token_and_a_ca_file(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    creds = load(str(write(tmp_path / "kc", cluster={"certificate-authority": "ca.crt"},
                           user={"token": "abc"})))
    assert creds.server == "https://10.0.0.1:6443"
    assert creds.ca_file == str(ca)                  # relative to the kubeconfig's directory
    assert creds.authorization() == "Bearer abc"


def test_inline_data_becomes_private_files(tmp_path):
    data = base64.b64encode(b"PEM").decode()
    creds = load(str(write(tmp_path / "kc", cluster={"certificate-authority-data": data},
                           user={"client-certificate-data": data,
                                 "client-key-data": data})))
    for name in (creds.ca_file, creds.cert_file, creds.key_file):
        assert Path(name).read_bytes() == b"PEM"
        assert Path(name).stat().st_mode & 0o077 == 0     # readable by this user only
    assert creds.authorization() is None


def test_a_token_file_is_read_again_after_a_minute(tmp_path, monkeypatch):
    token = tmp_path / "token"
    token.write_text("one\n")
    creds = load(str(write(tmp_path / "kc", user={"tokenFile": str(token)})))
    assert creds.authorization() == "Bearer one"
    token.write_text("two")
    assert creds.authorization() == "Bearer one"         # cached for a minute
    monkeypatch.setattr(kubeconfig, "TOKEN_REFRESH", 0.0)
    creds._cached = (0.0, None)
    assert creds.authorization() == "Bearer two"


PLUGIN = """\
import json, os, pathlib, sys
count = pathlib.Path(sys.argv[1])
n = int(count.read_text()) + 1 if count.exists() else 1
count.write_text(str(n))
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
print(json.dumps({"apiVersion": info["apiVersion"], "kind": "ExecCredential",
                  "status": {"token": f"exec-{n}-{os.environ['REGION']}",
                             "expirationTimestamp": sys.argv[2]}}))
"""


@pytest.mark.parametrize("expiry, runs", [("2999-01-01T00:00:00Z", 1),
                                          ("2000-01-01T00:00:00Z", 2)],
                         ids=["cached until it expires", "run again once expired"])
def test_an_exec_plugin(tmp_path, expiry, runs):
    script = tmp_path / "plugin.py"
    script.write_text(PLUGIN)
    count = tmp_path / "count"
    creds = load(str(write(tmp_path / "kc", user={"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
        "args": [str(script), str(count), expiry], "env": [{"name": "REGION", "value": "eu"}],
        "interactiveMode": "Never"}})))
    assert creds.authorization() == "Bearer exec-1-eu"
    creds.authorization()
    assert int(count.read_text()) == runs


def test_kubeconfig_list_merges_like_kubectl(tmp_path):
    first = tmp_path / "a"
    first.write_text(yaml.safe_dump({"current-context": "c", "contexts": [
        {"name": "c", "context": {"cluster": "k", "user": "u"}}]}))
    second = write(tmp_path / "b", server="https://second:6443", user={"token": "t"},
                   current="other")
    creds = load(None, environ={"KUBECONFIG": f"{first}:{second}"})
    assert (creds.server, creds.authorization()) == ("https://second:6443", "Bearer t")


def test_in_cluster(tmp_path):
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_text("ca")
    creds = load(None, environ={"KUBERNETES_SERVICE_HOST": "fd00::1",
                                "KUBERNETES_SERVICE_PORT": "443"}, service_account=tmp_path)
    assert creds.server == "https://[fd00::1]:443"
    assert creds.ca_file == str(tmp_path / "ca.crt")
    assert creds.authorization() == "Bearer sa-token"


ERRORS = {
    "no current context": (dict(current=None), "current-context is not set"),
    "a context without its cluster": (
        dict(extra={"contexts": [{"name": "c", "context": {"cluster": "gone", "user": "u"}}]}),
        "clusters: no entry named 'gone'"),
    "basic auth": (dict(user={"username": "a", "password": "b"}), "basic auth"),
    "an auth-provider": (dict(user={"auth-provider": {"name": "oidc"}}), "exec credential"),
    "bad base64": (dict(cluster={"certificate-authority-data": "%%%"}), "not base64"),
    "a missing CA file": (dict(cluster={"certificate-authority": "nope.crt"}),
                          "nope.crt does not exist"),
    "a server that is not a URL": (dict(server="10.0.0.1:6443"), r"is not an http\(s\) URL"),
    "a certificate without its key": (dict(user={"client-certificate-data": "UEVN"}),
                                      "go together"),
}


@pytest.mark.parametrize("kwargs, message", ERRORS.values(), ids=ERRORS.keys())
def test_errors_name_the_file_and_the_problem(tmp_path, kwargs, message):
    path = write(tmp_path / "kc", **kwargs)
    with pytest.raises(KubeconfigError, match=message) as err:
        load(str(path))
    assert str(path) in str(err.value)


def test_nothing_to_go_on():
    with pytest.raises(KubeconfigError, match="give --kubeconfig or set KUBECONFIG"):
        load(None, environ={})


# ----------------------------------------------------------------------------------------
# both clients against a TLS server that wants a client certificate


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    for name, subject in (("ca", "/CN=test-ca"), ("other-ca", "/CN=other-ca")):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                "-out", f"{name}.crt", "-days", "2", "-subj", subject, cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:kubernetes.test\n")
    for name, subject, ext in (("server", "/CN=kubernetes", ["-extfile", "san.ext"]),
                               ("client", "/CN=scaler/O=platform", [])):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                f"{name}.csr", "-subj", subject, cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", *ext, cwd=d)
    return d


@pytest.fixture
def tls_server(pki):
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            cert = self.connection.getpeercert() or {}
            subject = dict(x[0] for x in cert.get("subject", ()))
            seen.append({"path": self.path, "auth": self.headers.get("Authorization"),
                         "client": subject.get("commonName")})
            body = json.dumps({"kind": "EndpointSliceList", "items": [],
                               "metadata": {"resourceVersion": "7"}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / "server.crt", pki / "server.key")
    context.load_verify_locations(pki / "ca.crt")
    context.verify_mode = ssl.CERT_REQUIRED
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


PATH = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"


def both_clients(path: Path) -> tuple[int, dict]:
    status = KubeClient.from_config(str(path)).request("GET", PATH, timeout=5).status
    body = asyncio.run(KubeAPI(load(str(path))).get(PATH))
    return status, body


def test_the_daemon_and_the_activator_authenticate_alike_over_tls(tmp_path, pki, tls_server):
    url, seen = tls_server
    data = {n: base64.b64encode((pki / n).read_bytes()).decode()
            for n in ("ca.crt", "client.crt", "client.key")}
    path = write(tmp_path / "kc", server=url,
                 cluster={"certificate-authority-data": data["ca.crt"]},
                 user={"client-certificate-data": data["client.crt"],
                       "client-key-data": data["client.key"], "token": "tok"})
    status, body = both_clients(path)
    assert status == 200 and body["metadata"]["resourceVersion"] == "7"
    assert [(s["client"], s["auth"]) for s in seen] == [("scaler", "Bearer tok")] * 2


def test_a_server_signed_by_another_ca_is_refused_by_both(tmp_path, pki, tls_server):
    url, seen = tls_server
    path = write(tmp_path / "kc", server=url,
                 cluster={"certificate-authority": str(pki / "other-ca.crt")},
                 user={"client-certificate": str(pki / "client.crt"),
                       "client-key": str(pki / "client.key")})
    client = KubeClient.from_config(str(path))
    with pytest.raises(Exception, match="(?i)certificate verify failed"):
        client.request("GET", PATH, timeout=5)
    with pytest.raises(KubeAPIError, match="(?i)certificate verify failed"):
        asyncio.run(KubeAPI(load(str(path))).get(PATH))
    assert seen == []


@pytest.mark.filterwarnings("ignore:Unverified HTTPS request")
def test_tls_server_name_and_insecure_skip_verify(tmp_path, pki, tls_server):
    url, seen = tls_server
    named = write(tmp_path / "kc", server=url.replace("127.0.0.1", "localhost"),
                  cluster={"certificate-authority": str(pki / "ca.crt"),
                           "tls-server-name": "kubernetes.test"},
                  user={"client-certificate": str(pki / "client.crt"),
                        "client-key": str(pki / "client.key")})
    assert both_clients(named)[0] == 200
    insecure = write(tmp_path / "kc2", server=url,
                     cluster={"insecure-skip-tls-verify": True},
                     user={"client-certificate": str(pki / "client.crt"),
                           "client-key": str(pki / "client.key")})
    assert both_clients(insecure)[0] == 200
    assert len(seen) == 4


# ----------------------------------------------------------------------------------------
# finding the kubeconfig as kubectl does: --kubeconfig, $KUBECONFIG, ~/.kube/config; --context

def _two_contexts(path: Path, first: str, second: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "one",
        "clusters": [{"name": "a", "cluster": {"server": first}},
                     {"name": "b", "cluster": {"server": second}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "one", "context": {"cluster": "a", "user": "u"}},
                     {"name": "two", "context": {"cluster": "b", "user": "u",
                                                 "namespace": "shop"}}]}))
    return path


def test_home_kube_config_is_read_when_nothing_else_is_given(tmp_path):
    _two_contexts(tmp_path / ".kube" / "config", "https://a.example:6443",
                  "https://b.example:6443")
    creds = load(None, environ={"HOME": str(tmp_path)})
    assert creds.server == "https://a.example:6443"
    # It comes before the in-cluster service account, as in kubectl.
    env = {"HOME": str(tmp_path), "KUBERNETES_SERVICE_HOST": "10.0.0.1",
           "KUBERNETES_SERVICE_PORT": "443"}
    assert load(None, environ=env).server == "https://a.example:6443"


def test_context_picks_another_context_and_its_namespace(tmp_path):
    from scaler.kubeconfig import context_namespace

    path = _two_contexts(tmp_path / "kc", "https://a.example:6443", "https://b.example:6443")
    assert load(str(path), context="two").server == "https://b.example:6443"
    assert context_namespace(str(path), context="two") == "shop"
    assert context_namespace(str(path)) is None
    with pytest.raises(KubeconfigError, match=r"--context three: no such context \(found: "
                                              r"one, two\)"):
        load(str(path), context="three")


def test_kubeconfig_path_list_skips_missing_files_and_merges(tmp_path):
    path = _two_contexts(tmp_path / "kc", "https://a.example:6443", "https://b.example:6443")
    listed = os.pathsep.join([str(tmp_path / "missing"), str(path)])
    assert load(None, environ={"KUBECONFIG": listed}).server == "https://a.example:6443"
    # $KUBECONFIG wins over ~/.kube/config.
    _two_contexts(tmp_path / ".kube" / "config", "https://home.example:6443",
                  "https://b.example:6443")
    env = {"KUBECONFIG": listed, "HOME": str(tmp_path)}
    assert load(None, environ=env).server == "https://a.example:6443"
