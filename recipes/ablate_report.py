"""The report of an ablation grid (recipes/ablate.py, whose docstring describes it): results.json,
results.md and results.png in the grid's `out` folder, mean +- sample std over seeds per
(variant, lambda) group; a metric's old and new names read the same value (`_lookup`). One value has no
std (null in results.json, "x (1 seed)" in results.md, no error bar); a metric that some of a row's cells
lack says over how many it is taken ("x +- s (2 of 3 seeds)"). Cells restored from the grid's `archive` (a run
directory with archived.json) count like the others and are listed with their commit.

The grid's wall time (`_wall_time`) is the sum over the invocations of ablate.py recorded in
<out>/grid_time.json (this out folder's, so this machine's), with how many cells ran a stage in each; the
cells restored from the archive were trained elsewhere and their time is not in it.

What scored and trained each cell is compared across the cells (`_provenance`): cells scored by different
classifiers (a classifier retrained on another machine: other weights, other IS / classifier-FID /
conditional accuracy) or trained with a different CPU precision (train.fast_cpu resolved on: bf16
autocast, off: fp32) are pooled all the same, but results.md says so in a WARNING line naming them
(and otherwise names the one classifier and precision).
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


def _cell_name(cell: dict) -> str:
    """A grid cell as the lines of ablate and its report name it: "<group> seed <k>"."""
    return f"{cell['group']} seed {cell['seed']}"


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


def scored_by(metrics: dict | None) -> str | None:
    """The weights sha1 of the classifier that scored a cell (its metrics.json's classifier block, written
    by evaluate), None when none did."""
    clf = (metrics or {}).get("classifier")
    sha1 = clf.get("weights_sha1") if isinstance(clf, dict) else None
    return sha1 if isinstance(sha1, str) and sha1 else None


def _scorer_and_precision(metrics: dict, run: Path) -> dict[str, str | None]:
    """What a cell's numbers depend on beyond its run.yaml: the classifier that scored it (weights sha1
    and test accuracy, from metrics.json) and train.fast_cpu as train resolved it (config.yaml)."""
    clf, sha1 = metrics.get("classifier"), scored_by(metrics)
    acc = clf.get("test_accuracy") if isinstance(clf, dict) else None
    scorer = None if sha1 is None else sha1[:12] + (f" (test accuracy {acc:.1%})" if isinstance(acc, float) else "")
    cfg = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").is_file() else None
    fast_cpu = (cfg.get("train") or {}).get("fast_cpu") if isinstance(cfg, dict) else None
    return {"classifier": scorer, "train.fast_cpu": None if fast_cpu is None else str(fast_cpu)}


def _provenance(seen: dict[str, dict[str, list[str]]]) -> list[str]:
    """results.md's lines on what scored and trained the cells (`_scorer_and_precision`): one line with the
    properties every cell shares, and a WARNING line per property that differs, each value with its cells.
    Cells that do not record a property are left out of it."""
    same = [f"{name} {next(iter(values))}" for name, values in seen.items() if len(values) == 1]
    lines = [f"every cell: {'; '.join(same)}"] if same else []
    for name, values in seen.items():
        if len(values) > 1:
            parts = "; ".join(f"{value}: {', '.join(cells)}" for value, cells in values.items())
            lines.append(f"WARNING: the cells differ in {name}, so their scores are not comparable: {parts}")
    return lines


def _stat(vals: list[float], seeds: list[int]) -> dict:
    """A metric's entry in a row: mean, sample std (None for one value: undefined), values and the seeds
    they come from (fewer than the row's when some of its cells lack the metric)."""
    std = statistics.stdev(vals) if len(vals) > 1 else None
    return {"mean": statistics.fmean(vals), "std": std, "values": vals, "seeds": seeds}


def _cell_text(stat: dict, row_seeds: int) -> str:
    """results.md's cell: "mean +- std", "mean (1 seed)", and "(k of n seeds)" when the metric has fewer."""
    n = len(stat["values"])
    text = f"{stat['mean']:.4g}" + (f" +- {stat['std']:.2g}" if stat["std"] is not None else "")
    if n != row_seeds:
        return f"{text} ({n} of {row_seeds} seeds)"
    return text if n > 1 else f"{text} (1 seed)"


def _wall_time(times: list[dict], here: int, archived: int) -> tuple[dict | None, list[str]]:
    """results.json's grid_time and results.md's lines on it, from <out>/grid_time.json's entries (one per
    invocation of ablate.py): the wall time summed over them, each one's count of cells that ran a stage
    (and failed; an entry written before that was recorded has only its cells to run: "at most N"), and the
    reported cells trained here vs restored from the archive (trained elsewhere: not in the sum)."""
    if not times:
        return None, []
    total = sum(t["wall_s"] for t in times)
    packings = list(dict.fromkeys(t["packing"] for t in times))
    ran = [
        (str(t["ran"]) + (f" (+{t['failed']} failed)" if t.get("failed") else "")) if "ran" in t
        else f"at most {t['cells']}"
        for t in times
    ]  # fmt: skip
    info = {"wall_s": round(total, 1), "invocations": times, "cells_trained_here": here, "cells_from_archive": archived}
    if len(times) == 1:
        head = f"grid wall time {total:.0f} s here (1 invocation, {packings[0]}; cells that ran a stage: {ran[0]})"
    else:
        head = (
            f"grid wall time {total:.0f} s here, summed over {len(times)} invocations ({' / '.join(packings)}; "
            f"cells that ran a stage in each: {', '.join(ran)})"
        )
    cells = f"cells reported: {here} trained here" + (
        f", {archived} restored from the archive (trained elsewhere, not in this time)" if archived else ""
    )
    return info, [head, cells]


def report(grid: dict, all_cells: list[dict]) -> dict:
    """results.json, results.md and results.png in the grid's out folder for `all_cells` (the grid's cells,
    or those of the variants `--only` selected: results.md then names them); results.json's dict."""
    keys = grid.get("report") or []
    variants = [v["name"] for v in grid["variants"] if any(c["variant"] == v["name"] for c in all_cells)]
    others = [v["name"] for v in grid["variants"] if v["name"] not in variants]
    groups: dict[str, dict] = {}
    archived = []  # cells restored from the grid's archive (trained on another machine or checkout)
    seen: dict[str, dict[str, list[str]]] = {}  # property -> value -> cells (`_provenance`)
    for c in all_cells:
        metrics = finished_evaluation(c["run"] / "eval")
        if metrics is None:
            continue
        for name, value in _scorer_and_precision(metrics, c["run"]).items():
            if value is not None:
                seen.setdefault(name, {}).setdefault(value, []).append(_cell_name(c))
        if (c["run"] / "archived.json").is_file():
            info = read_json(c["run"] / "archived.json", {})
            archived.append(
                {"group": c["group"], "seed": c["seed"], **{k: info.get(k) for k in ("commit", "machine", "date")}}
            )
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
                g.setdefault("metric_seeds", {}).setdefault(k, []).append(c["seed"])
    rows = []
    for name, g in groups.items():
        row = {"group": name, "variant": g["variant"], "lam": g["lam"], "seeds": g["seeds"]}
        for k, vals in g["values"].items():
            row[k] = _stat(vals, g["metric_seeds"][k])
        times = [t for t in g["train_s"] if t is not None]
        row["train_s_mean"] = statistics.fmean(times) if times else None
        rows.append(row)
    n_cells = sum(len(g["seeds"]) for g in groups.values())
    grid_time, time_lines = _wall_time(read_json(grid["out"] / "grid_time.json", []), n_cells - len(archived),
                                       len(archived))  # fmt: skip
    configs = [c["run"] / "config.yaml" for c in all_cells if (c["run"] / "config.yaml").is_file()]
    base_cfg = yaml.safe_load(configs[0].read_text()) if configs else {}  # the first cell that has trained
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=grid["root"])
    result = {
        "grid": str(grid["root"]),
        "commit": commit.stdout.strip(),
        "machine": f"{_cpu_name()}, {os.cpu_count()} cores",
        "grid_time": grid_time,  # {"wall_s": summed, "invocations": grid_time.json, "cells_trained_here", ...}
        "steps": (base_cfg.get("train") or {}).get("steps"),
        "batch_size": (base_cfg.get("train") or {}).get("batch_size"),
        "metrics": keys,
        "variants": variants,  # the grid's, or those --only selected
        "rows": rows,
        "archived": archived,
        "scored_and_trained": seen,  # {"classifier"|"train.fast_cpu": {value: [cells]}}: one value each, or a WARNING
    }
    out = grid["out"]
    result["plot"] = _plot(rows, keys, out / "results.png")
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    restored = [f"{a['group']} seed {a['seed']} (commit {a['commit'] or 'unknown'}, {a['machine']}, {a['date']})"
                for a in archived]  # fmt: skip
    lines = [
        f"commit {result['commit']}, {result['steps']} steps x batch {result['batch_size']} per run, "
        f"{result['machine']}; mean +- std over seeds",
        *(
            [f"variants reported: {', '.join(variants)} (--only; the grid also has {', '.join(others)})"]
            if others
            else []
        ),
        *time_lines,
        *([f"from the grid's archive (trained elsewhere): {'; '.join(restored)}"] if restored else []),
        *_provenance(seen),
        "",
        "| variant | lambda | seeds | " + " | ".join(k.removeprefix("metrics.") for k in keys) + " | train s/run |",
        "|---|---:|---:|" + "---:|" * len(keys) + "---:|",
    ]
    for r in rows:
        cols = [_cell_text(r[k], len(r["seeds"])) if k in r else "-" for k in keys]
        t = f"{r['train_s_mean']:.0f}" if r["train_s_mean"] else "-"
        lam = "-" if r["variant"] == r["group"] else f"{r['lam']:g}"
        lines.append(f"| {r['variant']} | {lam} | {len(r['seeds'])} | " + " | ".join(cols) + f" | {t} |")
    if result["plot"]:
        base = result["plot"]["baseline"]
        caption = "mean +- std over seeds, one dot per seed" + (f"; dashed line: {base}" if base else "")
        lines += ["", f"![{caption}]({result['plot']['file']})"]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    return result
