"""Reading policy files: a file, or every *.yaml / *.yml in a directory.

The I/O half of ``scaler.policy``: it reads text and hands it to the pure parser, then
checks that names and targets are unique across all files. ``DEFAULT`` is the packaged
default policy (the repository's policies/default.yaml).
"""

from __future__ import annotations

from pathlib import Path

from scaler.policy.model import Policy
from scaler.policy.parse import PolicyError, check_unique, parse_policies

SUFFIXES = (".yaml", ".yml")
DEFAULT = Path(__file__).resolve().parent / "default.yaml"


def policy_paths(path: str | Path) -> list[Path]:
    p = Path(path)
    if p.is_dir():
        return sorted(f for f in p.iterdir() if f.suffix in SUFFIXES and f.is_file())
    return [p]


def load(path: str | Path, *, objects: bool = False) -> list[Policy]:
    """All policies under ``path`` (with ``objects``, ScalingPolicy object manifests
    too). Raises PolicyError listing every problem found."""
    paths = policy_paths(path)
    if not paths:
        raise PolicyError([f"{path}: no policy files (*.yaml, *.yml) in this directory"])
    policies: list[Policy] = []
    errors: list[str] = []
    for file in paths:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(f"{file}: cannot read: {getattr(exc, 'strerror', None) or exc}")
            continue
        try:
            policies.extend(parse_policies(text, str(file), objects=objects))
        except PolicyError as exc:
            errors.extend(exc.errors)
    if not errors:
        try:
            check_unique(policies)
        except PolicyError as exc:
            errors.extend(exc.errors)
    if errors:
        raise PolicyError(errors)
    return policies


def fingerprint(path: str | Path) -> tuple:
    """Changes when any policy file under ``path`` is added, removed or modified."""
    out = []
    for f in policy_paths(path):
        try:
            st = f.stat()
        except OSError:
            continue
        out.append((str(f), st.st_mtime_ns, st.st_size))
    return tuple(out)
