"""Results kept across evaluations, as fadtk keeps them: one CSV row per evaluation, per-file scores.

- `append_csv`: `evaluate --csv FILE` appends one row (date, gen, ref, embedder, set sizes, every
  metric) to a table shared by many runs; the header is written once, and a row with a metric the
  header lacks rewrites the file with the column added (earlier rows left blank there). Writers
  take an exclusive lock on the folder, appends are one write, rewrites are atomic renames.
- `per_file_scores`: `evaluate --per-file` writes per_file.csv, each generated clip's distance to
  the reference set, so the outliers can be found and heard. fadtk's `score_individual`
  (github.com/microsoft/fadtk, fad.py) fits a Gaussian to one song's frame embeddings and takes its
  Frechet distance to the reference Gaussian; our embedders give one vector per clip, so the
  clip's Gaussian is a point mass x and the distance is |x - mu|^2 + tr(C) (`fad_point`). Beside it,
  the nearest reference clip and its Euclidean distance (a small one flags a copied clip).
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from audiodiff.checkpoint import atomic_write_bytes
from audiodiff.eval.fad import gaussian_stats

# The columns every results row starts with; the metrics follow, in the order they first appeared.
CSV_COLUMNS = ("date", "gen", "ref", "embedder", "n_ref", "n_gen")


def csv_row(report: dict) -> dict:
    """One results row of an evaluation's report: `CSV_COLUMNS`, then each metric."""
    row = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "gen": report["gen"],
        "ref": report["ref"],
        "embedder": report.get("embedder", {}).get("name", ""),
        "n_ref": report["n_ref"],
        "n_gen": report["n_gen"],
    }
    return row | {k: repr(float(v)) for k, v in report["metrics"].items()}


def _encode(header: list[str], rows: list[dict]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, header, restval="", lineterminator="\n")
    writer.writerows(rows)
    return buf.getvalue().encode()


def append_csv(path: str | Path, row: dict) -> None:
    """Append `row` to the results table at `path` (created with its header if missing).

    Raises:
        ValueError: `path` holds something else than a results table.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"--csv {path}: folder {path.parent} does not exist")
    lock = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one writer at a time, across processes
        header, rows = _read_table(path)
        if header and tuple(header[: len(CSV_COLUMNS)]) != CSV_COLUMNS:
            raise ValueError(f"--csv {path}: not an evaluate results table (its columns start {header[:3]}, "
                             f"expected {list(CSV_COLUMNS[:3])}); name a new file")  # fmt: skip
        columns = header + [k for k in row if k not in header]
        if header and columns == header:
            with path.open("ab") as f:  # one write of one line: an append, never a partial table
                f.write(_encode(header, [row]))
                f.flush()
                os.fsync(f.fileno())
        else:  # a new table, or a new metric: the header changes, the table is rewritten
            atomic_write_bytes(path, _encode(columns, [dict(zip(columns, columns)), *rows, row]))
    finally:
        os.close(lock)


def _read_table(path: Path) -> tuple[list[str], list[dict]]:
    """The header and rows of a results table ([], [] for a missing or empty file)."""
    if not path.is_file() or not path.stat().st_size:
        return [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def per_file_scores(ref: np.ndarray, gen: np.ndarray) -> dict[str, np.ndarray]:
    """Each generated embedding's distance to the reference set (see the module docstring).

    Args:
        ref, gen: embeddings (N_ref, D), (N_gen, D).

    Returns:
        {"fad_point": (N_gen,), "nearest_ref": (N_gen,) indices into ref, "nearest_distance": (N_gen,)}
    """
    mu, cov = gaussian_stats(ref)
    ref, gen = np.asarray(ref, np.float64), np.asarray(gen, np.float64)
    fad_point = ((gen - mu) ** 2).sum(1) + np.trace(cov)
    dist = np.sqrt(np.clip((gen**2).sum(1)[:, None] - 2 * gen @ ref.T + (ref**2).sum(1)[None], 0, None))
    nearest = dist.argmin(1)
    return {"fad_point": fad_point, "nearest_ref": nearest, "nearest_distance": dist[np.arange(len(gen)), nearest]}


def write_per_file(path: Path, ref_paths: list[str], gen_paths: list[str], scores: dict, embedder: str) -> None:
    """per_file.csv: one row per generated clip, the farthest from the reference Gaussian first."""
    rows = [f"file,fad_point_{embedder},nearest_ref,nearest_ref_distance\n"]
    for i in np.argsort(-scores["fad_point"], kind="stable"):
        nearest = Path(ref_paths[scores["nearest_ref"][i]]).name
        rows.append(f"{Path(gen_paths[i]).name},{scores['fad_point'][i]:.6g},{nearest},"
                    f"{scores['nearest_distance'][i]:.6g}\n")  # fmt: skip
    atomic_write_bytes(path, "".join(rows).encode())


def source_commit() -> str | None:
    """The commit of the audiodiff checkout running (with "-dirty" for local changes), None outside git."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():  # an installed package: its own version says what it is
        return None
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=10"], cwd=root,
                             capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
