"""The layout is a picture of the data flow; import-linter keeps it that way, and each
entry point loads only the heavy libraries it uses."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def loaded(code: str, *, cwd: Path = ROOT) -> list[str]:
    """Run ``code`` in a fresh interpreter; the top-level modules it left loaded."""
    script = textwrap.dedent(code) + textwrap.dedent("""
        import sys
        print(sorted({m.split('.')[0] for m in sys.modules}), file=sys.stderr)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return eval(result.stderr.strip().splitlines()[-1])


def unreachable_cluster(tmp_path: Path) -> Path:
    """A kubeconfig for an API server that is not there: building the daemon needs one,
    ticking it once does not reach it."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n")
    return kubeconfig


def test_import_contracts_hold():
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--config", str(ROOT / ".importlinter")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 6 kept, 0 broken" in result.stdout


def test_pure_modules_do_not_load_io_libraries_at_runtime():
    modules = loaded("import scaler.kpa, scaler.decide.pipeline, scaler.decide.zero, "
                     "scaler.decide.windows, scaler.policy")
    heavy = {"kubernetes", "prometheus_api_client", "structlog", "requests", "scipy",
             "tenacity", "numpy", "urllib3", "prometheus_client"}
    assert heavy & set(modules) == set()


def test_validate_does_not_import_numpy_or_the_clients():
    modules = loaded("from scaler import cli; cli.main(['validate', 'policies'])")
    assert {"numpy", "kubernetes", "prometheus_api_client", "scipy", "PIL"} & set(modules) == set()


def test_the_daemon_does_not_load_numpy_scipy_or_pillow(tmp_path):
    """A sidecar pays for every import: the daemon's path stays free of the replay's
    array libraries (prediction, when on, is the one place scipy may load). The whole
    live daemon is built — source, actuator, dry run, lease, loop — and ticks once."""
    kubeconfig = unreachable_cluster(tmp_path)
    modules = loaded(f"""
        from scaler import app
        connection = app.prometheus_connection("http://127.0.0.1:9")
        policies = app.load_policies("policies/default.yaml")
        parts = app.build_daemon(policies, "policies/default.yaml", connection,
                                 kubeconfig={str(kubeconfig)!r}, dry_run=True,
                                 leader_elect=True, lease_namespace="default")
        parts.daemon.run_once()
    """)
    assert "kubernetes" in modules and "prometheus_api_client" in modules   # it did build
    assert {"numpy", "scipy", "PIL"} & set(modules) == set()


def test_the_daemon_with_seasonal_level_prediction_loads_numpy_but_never_scipy(tmp_path):
    """The default forecasting model is numpy only: a sidecar with prediction on pays for
    numpy, never for scipy (about a second and 40 MiB); Holt-Winters and EWMA import scipy
    when they first fit."""
    kubeconfig = unreachable_cluster(tmp_path)
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "apiVersion: scaler/v1\nkind: ScalingPolicy\nmetadata: {name: web}\nspec:\n"
        "  scaleTargetRef: {name: web}\n  metric: {query: sum(x)}\n"
        "  prediction: {enabled: true, horizon: 60s}\n"
        "  scaleToZero: {keepAlive: histogram}\n")
    modules = loaded(f"""
        from scaler import app
        connection = app.prometheus_connection("http://127.0.0.1:9")
        policies = app.load_policies({str(policy)!r})
        assert policies[0].prediction.model == "seasonal-level"
        parts = app.build_daemon(policies, {str(policy)!r}, connection,
                                 kubeconfig={str(kubeconfig)!r}, dry_run=True)
        parts.daemon.run_once()
        from scaler.decide.predict import Forecaster
        f = Forecaster.for_policy(policies[0])
        for t in range(0, 7200, 10):
            f.observe(1_000_000_000.0 + t, 50.0)
        assert f.advise(1_000_007_200.0).point is not None
    """)
    assert "numpy" in modules
    assert {"scipy", "PIL"} & set(modules) == set()


def test_a_replay_with_seasonal_level_prediction_never_loads_scipy(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "apiVersion: scaler/v1\nkind: ScalingPolicy\nmetadata: {name: web}\nspec:\n"
        "  scaleTargetRef: {name: web}\n  metric: {query: sum(x)}\n"
        "  prediction: {enabled: true}\n")
    modules = loaded(f"""
        from scaler import cli
        assert cli.main(["replay", "scaler/recordings/diurnal_morning.csv", "--policy",
                         {str(policy)!r}, "--out", {str(tmp_path / "out")!r}]) == 0
    """)
    assert "numpy" in modules and "PIL" in modules and "scipy" not in modules


def test_the_activator_never_loads_the_kubernetes_client_nor_the_array_libraries(tmp_path):
    """The activator's memory budget (60 MiB idle) has no room for the kubernetes package
    (about 36 MiB on import): its list+watch is its own. Built as `scaler activator
    --policy` builds it, without listening."""
    kubeconfig = unreachable_cluster(tmp_path)
    (tmp_path / "p.yaml").write_text(
        "apiVersion: scaler/v1\nkind: ScalingPolicy\nmetadata: {name: app}\nspec:\n"
        "  scaleTargetRef: {name: app}\n  metric: {source: activator}\n"
        "  activator: {port: http, hosts: [app.test], mode: always}\n")
    modules = loaded(f"""
        from scaler import cli
        from scaler.activator.cli import Setup
        from scaler.activator.endpointslices import EndpointSliceSource
        from scaler.activator.kubeapi import KubeAPI
        from scaler.activator.server import Activator
        args = cli._parser().parse_args(["activator", "--policy", {str(tmp_path)!r},
                                         "--kubeconfig", {str(kubeconfig)!r}])
        setup = Setup(args)
        Activator(setup.routes, EndpointSliceSource(KubeAPI(setup.creds)))
    """)
    assert "httptools" in modules and "yaml" in modules                # it did build
    assert {"kubernetes", "urllib3", "requests", "prometheus_api_client", "numpy", "scipy",
            "PIL", "tenacity"} & set(modules) == set()
