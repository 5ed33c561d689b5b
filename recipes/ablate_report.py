"""The report of an ablation grid (recipes/ablate.py, whose docstring describes it): results.json,
results.md and results.png in the grid's `out` folder, mean +- sample std over seeds per
(variant, lambda) group; a metric's old and new names read the same value (`_lookup`). One value has no
std (null in results.json, "x (1 seed)" in results.md, no error bar); a metric that some of a row's cells
lack says over how many it is taken ("x +- s (2 of 3 seeds)"). Below that table, each group against the
baseline (the first group without a regularizer, results.png's dashed line; `_versus`), per report key: the
difference of means, Welch's t-test p (`welch`), the p adjusted by Holm-Bonferroni over the groups with a p
on that key (`holm`) and a verdict at the grid's `alpha` (default 0.05): helps / hurts (adjusted p < alpha,
in the better / worse direction: audiodiff.eval.context.direction or the grid's `better:`), ties (not
significant, which is not equal), null where no p exists (one line per reason under the table). A signed
error (best at zero) is tested on each seed's |error| (lower is better), its signed difference kept.
No baseline or one seed per group: one line says why there is no comparison. Cells restored
from the grid's `archive` (a run directory with archived.json) count like the others and are listed with
their commit.

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
import math
import os
import statistics
import subprocess
import sys
import warnings
from pathlib import Path

import yaml

from audiodiff.checkpoint import read_json as load_json
from audiodiff.eval.context import direction, finished_evaluation
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
    baseline = _baseline(rows)
    return {"file": path.name, "baseline": baseline, "panels": plot_groups(rows, keys, path, baseline)}


def _baseline(rows: list[dict]) -> str | None:
    """The group the others are compared with (results.png's dashed line, results.md's second table): the
    first one without a regularizer (its variant has no lambda, so its group is named after it), or None."""
    return next((r["group"] for r in rows if r["variant"] == r["group"]), None)


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


ALPHA = 0.05  # the grid's `alpha` when it gives none
# what a signed error's (direction "zero": best at zero) verdict tests: each seed's magnitude, lower is better
ABS = "|error|"


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the given order: the i-th smallest of m p-values times m - i + 1
    (i from 1), made non-decreasing in that order and capped at 1; reject where adjusted p < alpha."""
    m, adjusted, running = len(pvalues), [0.0] * len(pvalues), 0.0
    for rank, i in enumerate(sorted(range(m), key=pvalues.__getitem__)):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def welch(a: list[float], b: list[float]) -> tuple[float | None, str | None]:
    """The two-sided p of Welch's t-test of `a` against `b` (scipy.stats.ttest_ind, equal_var=False), or None
    and why: fewer than 2 values on a side, a value that is nan or inf, or no spread on either (t undefined)."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return None, f"{len(a)} value{'s' * (len(a) != 1)} against the baseline's {len(b)} (a t-test needs 2 a side)"
    if not all(math.isfinite(v) for v in (*a, *b)):
        return None, "a value is nan or inf"
    if statistics.variance(a) == 0 and statistics.variance(b) == 0:
        return None, "no spread on either side (every seed gave the same value): Welch's t is undefined"
    with warnings.catch_warnings():  # scipy warns of precision loss when one side's seeds agree: p is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return (p, None) if math.isfinite(p) else (None, "Welch's t-test gave no p (nan)")


def _versus(rows: list[dict], keys: list[str], grid: dict) -> dict:
    """Each non-baseline row against the baseline (`_baseline`), per report key: the difference of means
    (row - baseline), Welch's p (`welch`), the Holm-adjusted p over the rows with a p on that key (`holm`)
    and a verdict, into row["versus_baseline"][key]. A signed error (direction "zero": best at zero) is tested
    on each seed's magnitude |e| (lower is better; "abs_difference": the difference of the mean |e|), its
    signed difference of means kept; entry["tested"] says which ("mean" | "|error|"). Returns results.json's
    "versus_baseline" (the test, alpha, the directions used, or why there is no comparison: "absent")."""
    alpha, given = grid.get("alpha", ALPHA), grid.get("better") or {}
    ways = {k: given.get(k) or direction(k.removeprefix("metrics.")) for k in keys}
    info = {
        "baseline": _baseline(rows),
        "test": "Welch's t-test, two-sided (scipy.stats.ttest_ind, equal_var=False), over each group's seeds",
        "correction": "Holm-Bonferroni over the groups with a p, per metric",
        "alpha": alpha,
        "better": ways,  # "higher" | "lower" | "zero" (a signed error: tested on |error|, lower is better)
        "better_from_grid": [k for k in keys if k in given],
        "tested": {k: ABS if ways[k] == "zero" else "mean" for k in keys},
        "verdicts": "helps / hurts: Holm-adjusted p < alpha, the difference in the better / worse direction; "
        "ties: not significant (not shown equal); null: no p (the entry's why). A signed error (better: zero) "
        "is tested on each seed's |error| (lower is better): p, p_holm and the verdict are of |error|, "
        "abs_difference the difference of the mean |error|, difference the signed difference of means",
        "absent": None,
    }
    base = next((r for r in rows if r["group"] == info["baseline"]), None)
    others = [r for r in rows if r is not base]
    if not keys:
        info["absent"] = "no report keys"
    elif base is None:
        info["absent"] = "no baseline: no group without a regularizer among those reported"
    elif not others:
        info["absent"] = "only the baseline group has finished cells"
    elif len(base["seeds"]) < 2 or all(len(r["seeds"]) < 2 for r in others):
        counts = {len(r["seeds"]) for r in rows}
        which = "every group has 1 seed" if counts == {1} else (
            f"the baseline has {len(base['seeds'])}" if len(base["seeds"]) < 2 else "every other group has 1"
        )  # fmt: skip
        info["absent"] = f"a t-test needs at least 2 seeds in each group, and {which}"
    if info["absent"]:
        return info
    for k in keys:
        signed, entries = ways[k] == "zero", []
        for r in others:
            if k not in r or k not in base:
                why = "the baseline has no value" if k not in base else "this group has no value"
                e = {"difference": None, "p": None, "p_holm": None, "verdict": None, "why": why}
            else:
                a, b = r[k]["values"], base[k]["values"]
                e = {"difference": r[k]["mean"] - base[k]["mean"], "tested": info["tested"][k]}
                if signed:
                    a, b = [abs(v) for v in a], [abs(v) for v in b]
                    e["abs_difference"] = statistics.fmean(a) - statistics.fmean(b)
                p, why = welch(a, b)
                e.update({"p": p, "p_holm": None, "verdict": None, "why": why, "n": [len(a), len(b)]})
            r.setdefault("versus_baseline", {})[k] = e
            entries.append(e)
        tested = [e for e in entries if e["p"] is not None]
        better = "lower" if signed else ways[k]
        for e, adjusted in zip(tested, holm([e["p"] for e in tested])):
            e["p_holm"] = adjusted
            if adjusted >= alpha:
                e["verdict"] = "ties"
            else:
                moved = e["abs_difference"] if signed else e["difference"]
                e["verdict"] = "helps" if (moved > 0) == (better == "higher") else "hurts"
    return info


def _short(names: list[str]) -> str:
    """Names joined by ", ", one that shares the previous full name's stem (up to its last "_") written from
    there: power_spectrum_db_low, _mid, _high."""
    out, stem = [], None
    for name in names:
        own = name[: name.rindex("_") + 1] if "_" in name else None
        if stem and own == stem:
            out.append(name[len(stem) - 1 :])
        else:
            out.append(name)
            stem = own
    return ", ".join(out)


def _versus_lines(info: dict, rows: list[dict], keys: list[str]) -> list[str]:
    """results.md's table of the rows against the baseline (`_versus`), or one line on why there is none:
    a short legend above it, one line per reason a group or metric has no p below it."""
    if info["absent"]:
        return ["", f"versus the baseline: no comparison ({info['absent']})"]
    counts = {r["group"]: len(r["seeds"]) for r in rows}
    usual = statistics.mode(counts.values())
    seeds = f"{usual} seed{'s' * (usual != 1)} per group" + (
        " but " + ", ".join(f"{g} {n}" for g, n in counts.items() if n != usual)
        if len(set(counts.values())) > 1 else ""
    )  # fmt: skip
    compared = [r for r in rows if "versus_baseline" in r]
    with_p = {sum(r["versus_baseline"][k]["p"] is not None for r in compared) for k in keys} - {0}  # 0: a note line
    with_p = with_p or {0}
    family = (
        f"the {next(iter(with_p))} groups with a p" if len(with_p) == 1
        else f"the groups with a p ({min(with_p)} to {max(with_p)})"
    )  # fmt: skip
    signed = [k for k in keys if info["tested"][k] == ABS]

    def head(k: str) -> str:
        way = r"signed; \|error\|, lower" if k in signed else info["better"][k]
        return f"{k.removeprefix('metrics.')} ({way}" + (", grid" if k in info["better_from_grid"] else "") + ")"

    lines = [
        "",
        f"versus the baseline ({info['baseline']}), per metric: difference of means, group - baseline "
        f"(Holm-adjusted p), verdict at alpha {info['alpha']:g}",
        "",
        f"- Welch's t-test (two-sided) over each group's seeds ({seeds}); Holm-Bonferroni over {family}, per metric",
        "- helps / hurts: significant in the better / worse direction; ties: not significant (not shown equal)",
    ]
    if signed:
        lines.append(
            r"- signed errors (closer to zero is better): the signed difference of means, then the test of each "
            r"seed's \|error\| (difference of the mean \|error\|; lower is better)"
        )
    lines += [
        "",
        "| variant | lambda | " + " | ".join(head(k) for k in keys) + " |",
        "|---|---:|" + "---:|" * len(keys),
    ]
    notes: dict[str, list[tuple[str, str]]] = {}  # why a cell has no p -> its (group, metric)s
    for r in compared:
        cells = []
        for k in keys:
            e = r["versus_baseline"][k]
            if e["difference"] is None:
                cells.append("-")
            else:
                p = "no p" if e["p_holm"] is None else f"{e['p_holm']:.2g}"
                text = f"{e['difference']:+.3g}" + (
                    r", \|error\| " + f"{e['abs_difference']:+.3g}" if k in signed else ""
                )
                cells.append(f"{text} ({p})" + (f" {e['verdict']}" if e["verdict"] else ""))
            if e["verdict"] is None:
                notes.setdefault(e["why"], []).append((r["group"], k.removeprefix("metrics.")))
        lam = "-" if r["variant"] == r["group"] else f"{r['lam']:g}"  # another variant without a regularizer
        lines.append(f"| {r['variant']} | {lam} | " + " | ".join(cells) + " |")
    if notes:
        lines.append("")
    for why, pairs in notes.items():
        groups, names = list(dict.fromkeys(g for g, _ in pairs)), list(dict.fromkeys(m for _, m in pairs))
        if len(pairs) == len(groups) * len(names) and len(names) == len(keys):
            what = ", ".join(groups) + (" (every metric)" if len(keys) > 1 else "")
        elif len(pairs) == len(groups) * len(names) and len(groups) == len(compared):
            what = _short(names) + (" (every group)" if len(compared) > 1 else "")
        else:
            what = "; ".join(f"{g} on {_short([m for h, m in pairs if h == g])}" for g in groups)
        lines.append(f"- no p for {what}: {why}")
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
    versus = _versus(rows, keys, grid)  # row["versus_baseline"] of each row but the baseline
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
        "versus_baseline": versus,  # the test, alpha, the directions; each row's under row["versus_baseline"]
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
    lines += _versus_lines(versus, rows, keys)
    if result["plot"]:
        base = result["plot"]["baseline"]
        caption = "mean +- std over seeds, one dot per seed" + (f"; dashed line: {base}" if base else "")
        lines += ["", f"![{caption}]({result['plot']['file']})"]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    return result
