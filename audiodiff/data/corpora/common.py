"""Shared pieces of the corpus recipes: checksummed downloads, extraction, audio audits, data dirs."""

from __future__ import annotations

import hashlib
import os
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from audiodiff.data.validate import check_audio


def progress(total: int | None, desc: str, unit: str = "it", **kwargs) -> tqdm:
    """A progress bar on stderr, shown only on a terminal (recipe logs stay free of bar redraws)."""
    return tqdm(total=total, desc=desc, unit=unit, disable=None, mininterval=0.5, **kwargs)


def sha256sum(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(url: str, dest: Path, sha256: str) -> Path:
    """Download `url` to `dest` unless a file with the right checksum is already there.

    The download goes to a temp file that is renamed only after its SHA-256 matches (an empty
    `sha256` skips the check). Offline, or with a bad URL, this fails with one line saying which
    file to put where.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file() and (not sha256 or sha256sum(dest) == sha256):
        return dest
    tmp = dest.with_name(dest.name + ".partial")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as f:
            size = int(response.headers.get("Content-Length") or 0) or None
            with progress(size, f"download {dest.name}", "B", unit_scale=True, unit_divisor=1024) as bar:
                while block := response.read(1 << 20):
                    f.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError) as err:
        tmp.unlink(missing_ok=True)
        reason = getattr(err, "reason", err)
        raise RuntimeError(
            f"cannot download {url} ({reason}); fetch it yourself and put it at {dest}"
            + (f" (sha256 {sha256})" if sha256 else "")
        ) from None
    if sha256 and (got := sha256sum(tmp)) != sha256:
        tmp.unlink()
        raise RuntimeError(f"checksum mismatch for {url}: expected sha256 {sha256}, got {got}")
    os.replace(tmp, dest)
    return dest


def extract(archive: Path, into: Path, keep: Callable[[str], bool] = lambda name: True) -> None:
    """Extract the members of a tar archive (any compression) whose names pass `keep`."""
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if keep(m.name)]
        with progress(len(members), f"extract {Path(archive).name}", "file") as bar:
            for member in members:
                tar.extract(member, into, filter="data")
                bar.update(1)


def audit(items: list[dict], report: Path) -> list[dict]:
    """Keep the items whose audio is usable; list the others with the reason in `report` (TSV).

    Each item has "utt" and "path". A bad file never costs the good ones.
    """
    good, bad = [], []
    for item in progress(None, "check audio", "file", iterable=items):
        why = check_audio(item["path"])
        (bad if why else good).append(item if not why else (item["utt"], item["path"], why))
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("utt\tpath\treason\n" + "".join(f"{u}\t{p}\t{w}\n" for u, p, w in bad))
    return good


def write_data_dir(directory: Path, utts: list[dict]) -> None:
    """wav.scp, utt2spk, spk2utt and (when present) text and utt2label, sorted by utterance id."""
    directory.mkdir(parents=True, exist_ok=True)
    utts = sorted(utts, key=lambda u: u["utt"])
    (directory / "wav.scp").write_text("".join(f"{u['utt']} {u['path']}\n" for u in utts))
    (directory / "utt2spk").write_text("".join(f"{u['utt']} {u['spk']}\n" for u in utts))
    if all("text" in u for u in utts):
        (directory / "text").write_text("".join(f"{u['utt']} {u['text']}\n" for u in utts))
    if all("label" in u for u in utts):
        (directory / "utt2label").write_text("".join(f"{u['utt']} {u['label']}\n" for u in utts))
    spk2utt: dict[str, list[str]] = {}
    for u in utts:
        spk2utt.setdefault(u["spk"], []).append(u["utt"])
    (directory / "spk2utt").write_text("".join(f"{s} {' '.join(us)}\n" for s, us in sorted(spk2utt.items())))


def finish_audio_corpus(out: Path, name: str, items: list[dict]) -> dict:
    """Audit the items, write data/{train,valid,test} by each item's "split", and <out>/<name>.json."""
    import json

    good = audit(items, out / "bad_audio.tsv")
    counts = {}
    for part in ("train", "valid", "test"):
        utts = [i for i in good if i["split"] == part]
        write_data_dir(out / "data" / part, utts)
        counts[part] = len(utts)
    summary = {"corpus": name, "utterances": counts, "bad_files": len(items) - len(good)}
    (out / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
