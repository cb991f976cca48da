"""Which code produced a number: package version plus the git commit when there is one."""

from __future__ import annotations

import functools
import os
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


@functools.cache
def code_version() -> str:
    """``"<version>+g<sha>[.dirty]"`` in a git checkout; else ``HPO_CODE_VERSION`` (the image
    sets it at build time, having no git), else the installed package version."""
    try:
        base = version("qgan-hpo")
    except PackageNotFoundError:
        base = "0+unknown"
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=root, text=True,
                             capture_output=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               text=True, capture_output=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("HPO_CODE_VERSION") or base
    return f"{base}+g{sha}" + (".dirty" if dirty else "")
