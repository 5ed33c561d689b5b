"""Where the embedders' published weights come from, and the base class of the embedders that use them.

Weights are looked up in this order: the path given (`--embedder-weights`), then the cache
directory ($AUDIODIFF_WEIGHTS, else ~/.cache/audiodiff/weights), then downloaded there from the
official URL (checked against the SHA-256 prefix in the file name where the publisher gives one).
Offline and without the file, loading fails with one line that names the file, the URL and the
directory to put it in.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from pathlib import Path

import torch
from torch import nn


def cache_dir(name: str) -> Path:
    """$XDG_CACHE_HOME/audiodiff/<name> (default ~/.cache/audiodiff/<name>)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "audiodiff" / name


def weights_dir() -> Path:
    env = os.environ.get("AUDIODIFF_WEIGHTS")
    return Path(env) if env else cache_dir("weights")


def find_weights(
    embedder: str, filename: str, url: str, path: str | Path | None = None, sha256_prefix: str = ""
) -> Path:
    """The weights file: `path` if given, else the cache, else downloaded into the cache."""
    if path:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"embedder {embedder!r}: weights file {path} does not exist")
        return path
    dest = weights_dir() / filename
    if not dest.is_file():
        from audiodiff.data.corpora.common import fetch

        try:
            fetch(url, dest, "")
        except RuntimeError as err:
            raise FileNotFoundError(
                f"embedder {embedder!r}: {filename} is not in {dest.parent} and the download failed "
                f"({str(err).split(';')[0]}); put {url} there or pass --embedder-weights PATH"
            ) from None
    if sha256_prefix:
        got = hashlib.sha256(dest.read_bytes()).hexdigest()
        if not got.startswith(sha256_prefix):
            raise ValueError(f"embedder {embedder!r}: {dest} has sha256 {got[:8]}..., expected {sha256_prefix}...")
    return dest


def load_state(path: Path) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("model", state) if isinstance(state, dict) else state


class Published(ABC):
    """Base of the embedders whose network is defined here and loads a published weights file:
    `FILE` from `URL`, checked against the sha256 prefix `SHA256` when cached or downloaded (see
    `find_weights`; a file the caller names is taken as it is). Subclasses give `network()` and,
    where the file holds more than the network, `state(full, path)`."""

    name, FILE, URL, SHA256 = "", "", "", ""

    def __init__(self, weights: str | Path | None = None, device: str = "cpu") -> None:
        path = find_weights(self.name, self.FILE, self.URL, weights, "" if weights else self.SHA256)
        self.net = self.network()
        self.net.load_state_dict(self.state(load_state(path), path))
        self.net.to(device).eval()
        self.device = device

    @abstractmethod
    def network(self) -> nn.Module:
        """The embedder's network, freshly built (the weights are loaded into it)."""

    def state(self, full: dict, path: Path) -> dict:
        """The network's state dict from the file's."""
        return full
