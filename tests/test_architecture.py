"""The layout is a picture of the data flow; import-linter keeps it that way."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold():
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--config", str(ROOT / ".importlinter")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 4 kept, 0 broken" in result.stdout


def test_pure_modules_do_not_load_io_libraries_at_runtime():
    code = ("import sys; import scaler.kpa, scaler.windows, scaler.zero, scaler.policy, "
            "scaler.scaling; heavy = {'kubernetes', 'prometheus_api_client', 'structlog', "
            "'requests', 'scipy', 'tenacity'} & set(m.split('.')[0] for m in sys.modules); "
            "print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    assert out == "[]"


def test_validate_does_not_import_numpy_or_the_clients():
    code = ("import sys; from scaler import cli; cli.main(['validate', 'policies']); "
            "print(sorted({'numpy', 'kubernetes', 'prometheus_api_client', 'scipy', 'PIL'} & "
            "set(m.split('.')[0] for m in sys.modules)), file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.stderr.strip().splitlines()[-1] == "[]"


def test_the_daemon_does_not_load_numpy_scipy_or_pillow():
    """A sidecar pays for every import: the daemon's path stays free of the replay's
    array libraries (prediction, when on, is the one place scipy may load)."""
    code = ("import sys; from scaler import observability, policy_files, loop, lease; "
            "from scaler.actuators import kubernetes; from scaler.sources import prometheus; "
            "print(sorted({'numpy', 'scipy', 'PIL'} & "
            "set(m.split('.')[0] for m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    assert out == "[]"
