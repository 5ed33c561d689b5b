"""The report of an ablation grid (recipes/ablate.py, whose docstring describes it): results.json,
results.md and results.png in the grid's `out` folder, mean +- sample std over seeds per
(variant, lambda) group; a metric's old and new names read the same value (`_lookup`).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

from audiodiff.checkpoint import read_json as load_json
from audiodiff.eval.context import finished_evaluation
from audiodiff.eval.plots import plot_groups
from audiodiff.fastcpu import cpu_name as _cpu_name


def read_json(path: Path, default):
    """The JSON in `path`, or `default` when it is missing or cut off (said on stderr: it is redone)."""
    if not path.exists():
        return default
    try:
        return load_json(path)
    except ValueError:
        print(f"{path}: not JSON (an interrupted write?); treated as missing", file=sys.stderr)
        return default


def _flatten(metrics: dict, prefix: str = "") -> dict[str, float]:
    flat = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            flat[f"{prefix}{k}"] = float(v)
    return flat


def _lookup(flat: dict[str, float], key: str, embedder: str | None) -> float | None:
    """flat[key], or the same metric under its other name: metrics.fad <-> metrics.fad_<embedder>.

    Scores in an embedding space are named after the embedder since issue 17 (fad -> fad_ge2e);
    old grids name them without it, old metrics.json files store them without it.
    """
    if key in flat or embedder is None:
        return flat.get(key)
    for other in (f"{key}_{embedder}", key.removesuffix(f"_{embedder}")):
        if other in flat:
            return flat[other]
    return None


def _plot(rows: list[dict], keys: list[str], path: Path) -> dict | None:
    """results.png (`plot_groups`), the first group without a regularizer as the baseline line;
    {"file", "baseline", "panels"} (the panels' titles), or None (and no file) with no keys or rows."""
    if not (keys and rows):
        path.unlink(missing_ok=True)  # an earlier report's picture would no longer match results.md
        return None
    baseline = next((r["group"] for r in rows if r["variant"] == r["group"]), None)
    return {"file": path.name, "baseline": baseline, "panels": plot_groups(rows, keys, path, baseline)}


def report(grid: dict, all_cells: list[dict]) -> dict:
    keys = grid.get("report") or []
    groups: dict[str, dict] = {}
    for c in all_cells:
        metrics = finished_evaluation(c["run"] / "eval")
        if metrics is None:
            continue
        flat, embedder = _flatten(metrics), (metrics.get("embedder") or {}).get("name")
        tpath = c["run"] / "timing.json"
        timing = read_json(tpath, {})
        g = groups.setdefault(c["group"], {"variant": c["variant"], "lam": c["lam"], "seeds": [], "values": {}})
        g["seeds"].append(c["seed"])
        g.setdefault("train_s", []).append(timing.get("train_s"))
        for k in keys:
            value = _lookup(flat, k, embedder)
            if value is not None:
                g["values"].setdefault(k, []).append(value)
    rows = []
    for name, g in groups.items():
        row = {"group": name, "variant": g["variant"], "lam": g["lam"], "seeds": g["seeds"]}
        for k, vals in g["values"].items():
            row[k] = {
                "mean": statistics.fmean(vals),
                "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
                "values": vals,
            }
        times = [t for t in g["train_s"] if t is not None]
        row["train_s_mean"] = statistics.fmean(times) if times else None
        rows.append(row)
    times_path = grid["out"] / "grid_time.json"
    last_time = (read_json(times_path, []) or [None])[-1]
    base_cfg = yaml.safe_load(all_cells[0]["run"].joinpath("config.yaml").read_text()) if all_cells else {}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=grid["root"])
    result = {
        "grid": str(grid["root"]),
        "commit": commit.stdout.strip(),
        "machine": f"{_cpu_name()}, {os.cpu_count()} cores",
        "grid_time": last_time,
        "steps": (base_cfg.get("train") or {}).get("steps"),
        "batch_size": (base_cfg.get("train") or {}).get("batch_size"),
        "metrics": keys,
        "rows": rows,
    }
    out = grid["out"]
    result["plot"] = _plot(rows, keys, out / "results.png")
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"commit {result['commit']}, {result['steps']} steps x batch {result['batch_size']} per run, "
        f"{result['machine']}; mean +- std over seeds",
        *(
            [f"grid wall time {last_time['wall_s']:.0f} s ({last_time['cells']} runs, {last_time['packing']})"]
            if last_time
            else []
        ),
        "",
        "| variant | lambda | seeds | " + " | ".join(k.removeprefix("metrics.") for k in keys) + " | train s/run |",
        "|---|---:|---:|" + "---:|" * len(keys) + "---:|",
    ]
    for r in rows:
        cols = [f"{r[k]['mean']:.4g} +- {r[k]['std']:.2g}" if k in r else "-" for k in keys]
        t = f"{r['train_s_mean']:.0f}" if r["train_s_mean"] else "-"
        lam = "-" if r["variant"] == r["group"] else f"{r['lam']:g}"
        lines.append(f"| {r['variant']} | {lam} | {len(r['seeds'])} | " + " | ".join(cols) + f" | {t} |")
    if result["plot"]:
        base = result["plot"]["baseline"]
        caption = "mean +- std over seeds, one dot per seed" + (f"; dashed line: {base}" if base else "")
        lines += ["", f"![{caption}]({result['plot']['file']})"]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    return result
