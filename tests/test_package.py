"""The package ships real files: the wheel holds every file of scaler/ (the default policy
and the recordings included, none a symlink), so `scaler replay` works in the image."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "scaler"


def _package_files() -> set[str]:
    """Every file of scaler/ in the repository (git's list: no bytecode, no build output)."""
    listed = subprocess.run(["git", "ls-files", "scaler"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split()
    return {name for name in listed if not name.endswith(".pyc")}


def test_nothing_in_the_package_is_a_symlink():
    # A symlink out of the package is left behind by the wheel and the image's build
    # context (the default policy once was one).
    links = [p for p in PACKAGE.rglob("*") if p.is_symlink()]
    assert links == []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                           str(out), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (built,) = out.glob("scaler-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_holds_every_file_of_the_package(wheel):
    names = set(wheel.namelist())
    missing = _package_files() - names
    assert not missing, f"left out of the wheel: {sorted(missing)}"
    for needed in ("scaler/policy/default.yaml", "scaler/recordings/default.csv",
                   "scaler/recordings/nasa_aug1995_x100.csv.gz"):
        assert wheel.read(needed) == (ROOT / needed).read_bytes(), needed


def test_the_packaged_default_policy_and_recording_replay_from_an_installed_copy(
        wheel, tmp_path):
    # Unpacked away from the repository: only what the wheel carries.
    site = tmp_path / "site"
    wheel.extractall(site)
    done = subprocess.run([sys.executable, "-c", "from scaler.cli import main; import sys; "
                           f"sys.exit(main(['replay', '--no-chart', '--out', "
                           f"{str(tmp_path / 'out')!r}]))"],
                          cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "scaler replay: default.csv with policy default" in done.stdout
    assert str(site) in (tmp_path / "out" / "summary.json").read_text()
