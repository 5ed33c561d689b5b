#!/usr/bin/env python
"""Run a regularizer ablation grid (variants x lambdas x seeds) and tabulate mean and spread.

    python ../../recipes/ablate.py grid.yaml [--workers 2] [--threads 1] [--stage train|generate|evaluate|report]

The grid file (YAML, paths relative to it):

    config: conf/ablation.yaml           # the shared base config (model, diffusion, data, budget)
    train_data: data/digits/data/train
    ref: data/digits/data/test           # evaluation reference (the unseen-voice test split)
    out: exp/ablation                    # one run directory per (variant, lambda, seed)
    seeds: [0, 1, 2]                     # train.seed of each repetition
    generate: [--seeds, 0-63, --seconds, "1.0"]          # extra `audiodiff generate` options
    evaluate: [--metrics, "fad,kad,ndb,mean_spectrum"]   # extra `audiodiff evaluate` options
    classifier: data/digits/classifier   # optional: adds classifier-FID, IS, mIS, AM
    report: [metrics.fad_ge2e, metrics.kad_ge2e, metrics.mean_spectrum_db_l1]   # metrics.json keys, in table order
    overrides: [train.fast_cpu=auto]     # optional: appended to every run's `audiodiff train`

Embedding metrics carry their embedder (metrics.fad_ge2e); a grid's older name (metrics.fad) reads
the same value, and so does a new name from metrics.json written before the rename.
    variants:
      - {name: baseline}
      - {name: amp, loss: ../../configs/loss/amp.yaml, lams: [1.0e-5, 1.0e-4, 1.0e-3]}
      - {name: amp_w, loss: ..., lams: [...], overrides: [regularizer.weighting=weighted]}
      - {name: ap, regularizer: {losses: [{name: amp_phase}]}, lams: [0.1]}   # inline instead of a file

Each run gets a composed config `<out>/<variant>_lam<lambda>/seed<k>/run.yaml` (base + loss file +
lambda + seed), so any single cell can be re-run by hand with `audiodiff train`. Finished stages
are skipped (a run is trained when its final checkpoint exists, generated when generated/settings.json
says generate finished the set, evaluated when eval/metrics.json holds a whole report; generating a set
anew removes its old metrics.json), so an interrupted grid resumes where it stopped;
`--stage evaluate --force-eval` re-scores every run (e.g. with a new metric) without retraining.
`--set KEY=YAML` replaces a key of the grid file for one invocation, e.g. a smoke of a grid at a tiny
budget in a scratch folder: `--set out=exp/smoke --set 'seeds=[0]' --set 'overrides=[train.steps=2]'
--set 'generate=[--seeds, 0-3]'` (paths relative to the grid file, as in it; `--set classifier=null`
leaves an optional key out; list keys must be YAML lists).
The report (`<out>/results.json`, `<out>/results.md`) gives mean +- sample std over seeds, the
training budget (steps, wall seconds per run), the machine and the commit; `<out>/results.png` (linked
from results.md) draws it: one panel per report key, a bar per group with the seed std and each seed's
value, the baseline (the first group without a regularizer) as a dashed line.
Packing: `--workers` processes run cells side by side, each with `--threads` OpenMP/MKL threads;
workers x threads may not exceed the cores. The default is one thread per process and as many
processes as cores (on a busy 2-core box a 2-thread job next to another job slowed ~7x, its threads
waiting on each other; one thread per process was steadier). Measured on an idle 2-core AMD EPYC
(a 4-run checkerboard grid, 400 steps a run, docs/results.md): 2 processes x 1 thread 325 s, 1 x 2
433 s, so the default is 1.33x faster there; time a grid with each before changing it on another box.
Each invocation's wall time and packing are appended to `<out>/grid_time.json`; the report shows the last.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from audiodiff.checkpoint import read_json as load_json
from audiodiff.checkpoint import write_json
from audiodiff.eval.context import finished_evaluation
from audiodiff.eval.plots import plot_groups
from audiodiff.fastcpu import cpu_name as _cpu_name  # recipes/learning_curve.py imports it from here
from audiodiff.runfiles import set_complete

STAGES = ("train", "generate", "evaluate", "report")


def _fmt_lam(lam: float) -> str:
    return f"{lam:g}"


GRID_KEYS = ("config", "train_data", "ref", "out", "seeds", "variants", "generate", "evaluate", "classifier", "report",
             "overrides")  # fmt: skip
LIST_KEYS = ("seeds", "variants", "generate", "evaluate", "report", "overrides")


def grid_sets(items: list[str]) -> dict:
    """`--set KEY=YAML` items -> {KEY: parsed YAML}. Raises ValueError naming a malformed item or unknown KEY."""
    sets = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or key not in GRID_KEYS:
            raise ValueError(f"--set {item!r}: expected KEY=YAML with KEY one of {', '.join(GRID_KEYS)}")
        try:
            sets[key] = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ValueError(f"--set {item!r}: not YAML ({str(err).splitlines()[0]})") from None
    return sets


def load_grid(path: Path, sets: dict | None = None) -> dict:
    """The grid file at `path`, its keys replaced by `sets` (`grid_sets`), paths resolved against its folder."""
    grid, sets = yaml.safe_load(path.read_text()), sets or {}
    if isinstance(grid, dict):  # --set KEY=null leaves an optional key out (e.g. classifier)
        grid = {k: v for k, v in {**grid, **sets}.items() if not (k in sets and v is None)}
    required = ("config", "train_data", "ref", "out", "seeds", "variants")
    for key in required:
        if not isinstance(grid, dict) or key not in grid:
            raise SystemExit(
                f"{path}: missing key '{key}': not an ablation grid (egs/<recipe>/grid*.yaml, keys "
                f"{', '.join(required)}); a training config (egs/<recipe>/conf/*.yaml) goes to `audiodiff train`"
            )
    bad = [k for k in LIST_KEYS if k in grid and not isinstance(grid[k], list)]  # a string would be splatted
    if bad:
        where = "--set" if bad[0] in sets else str(path)
        raise SystemExit(f"{where}: {bad[0]} must be a YAML list ({bad[0]}: [...]), got {grid[bad[0]]!r}")
    root = path.parent.resolve()
    grid["root"] = root
    for key in ("config", "train_data", "ref", "out", "classifier"):
        if key in grid:
            grid[key] = (root / grid[key]).resolve()
    names = [v["name"] for v in grid["variants"]]
    if len(set(names)) != len(names):
        raise SystemExit(f"{path}: variant names repeat: {names}")
    return grid


def cells(grid: dict) -> list[dict]:
    """One dict per run: variant, lambda, seed, run directory, composed config text.

    Seed-major: every (variant, lambda) at the first seed, then all at the second, ...; the grid runs
    in this order, so one stopped part way (a session's end) already compares every variant."""
    out = []
    for v in grid["variants"]:
        regularized = bool(v.get("loss") or v.get("regularizer"))
        lams = v.get("lams", [0.0]) if regularized else [0.0]
        for lam in lams:
            group = v["name"] if not regularized else f"{v['name']}_lam{_fmt_lam(lam)}"
            for seed in grid["seeds"]:
                run = grid["out"] / group / f"seed{seed}"
                defaults = [str(grid["config"])]
                if v.get("loss"):
                    defaults.append(str((grid["root"] / v["loss"]).resolve()))
                body = {"defaults": defaults, "train": {"seed": int(seed)}}
                if regularized:
                    body["regularizer"] = {**v.get("regularizer", {}), "lam": float(lam)}
                out.append(
                    {
                        "variant": v["name"],
                        "lam": float(lam),
                        "group": group,
                        "seed": int(seed),
                        "run": run,
                        "config": yaml.safe_dump(body, sort_keys=False),
                        "overrides": [*grid.get("overrides", []), *v.get("overrides", [])],
                    }
                )
    return sorted(out, key=lambda c: grid["seeds"].index(c["seed"]))  # stable: variant order within a seed


def packing(workers: int | None, threads: int, cores: int) -> tuple[int, int]:
    """(processes, threads per process) for a grid on `cores` cores.

    workers None: as many processes as fit, cores // threads (at least 1).
    Raises ValueError when a count is below 1 or workers x threads exceeds the cores.
    """
    if threads < 1 or (workers is not None and workers < 1):
        raise ValueError(f"--workers and --threads must be >= 1, got workers={workers}, threads={threads}")
    procs = max(1, cores // threads) if workers is None else workers
    if procs * threads > cores:
        raise ValueError(
            f"--workers {procs} x --threads {threads} = {procs * threads} threads on {cores} cores: "
            "oversubscribed OpenMP threads wait on each other; lower one of them"
        )
    return procs, threads


def _sh(cmd: list[str], log: Path, threads: int = 1) -> None:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with log.open("a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed (exit {proc.returncode}); see {log}")


def run_cell(cell: dict, grid: dict, stages: set[str], force_eval: bool, threads: int = 1) -> dict:
    run: Path = cell["run"]
    run.mkdir(parents=True, exist_ok=True)
    log = run / "ablate.log"
    cfg_path = run / "run.yaml"
    cfg_path.write_text(cell["config"])
    timing_path = run / "timing.json"
    timing = read_json(timing_path, {})
    cli = [sys.executable, "-m", "audiodiff.cli"]
    if "train" in stages and not timing.get("train_done"):
        t0 = time.perf_counter()
        _sh(
            [
                *cli,
                "train",
                str(cfg_path),
                "--auto-resume",
                "--no-progress",
                f"name={run.name}",
                f"exp_dir={run.parent}",
                f"data.train={grid['train_data']}",
                *cell["overrides"],
            ],
            log,
            threads,
        )
        timing.update(train_s=round(time.perf_counter() - t0, 1), train_done=True)
        write_json(timing_path, timing)
    gen, ev = run / "generated", run / "eval"
    if "generate" in stages and not set_complete(gen):
        if (gen / "settings.json").exists():
            print(f"{gen}: generate did not finish this set; generating it again", flush=True)
        (ev / "metrics.json").unlink(missing_ok=True)  # the scores of the set being replaced
        t0 = time.perf_counter()
        _sh(
            [*cli, "generate", "--ckpt", str(run), "--out", str(gen), "--device", "cpu", *grid.get("generate", [])],
            log,
            threads,
        )
        timing["generate_s"] = round(time.perf_counter() - t0, 1)
        write_json(timing_path, timing)
    if "evaluate" in stages and (force_eval or finished_evaluation(ev) is None):
        _sh(
            [
                *cli,
                "evaluate",
                "--ref",
                str(grid["ref"]),
                "--gen",
                str(gen),
                "--out",
                str(ev),
                "--device",
                "cpu",
                *grid.get("evaluate", []),
                *(["--classifier", str(grid["classifier"])] if "classifier" in grid else []),
            ],
            log,
            threads,
        )
    return cell


def read_json(path: Path, default):
    """The JSON in `path`, or `default` when it is missing or cut off (said on stderr: it is redone)."""
    if not path.exists():
        return default
    try:
        return load_json(path)
    except ValueError:
        print(f"{path}: not JSON (an interrupted write?); treated as missing", file=sys.stderr)
        return default


def record_time(out: Path, wall_s: float, n_cells: int, procs: int, threads: int, stages: list[str]) -> None:
    """Append one invocation's wall time and packing to <out>/grid_time.json."""
    path = out / "grid_time.json"
    out.mkdir(parents=True, exist_ok=True)
    times = read_json(path, [])
    packed = f"{procs} process{'es' if procs > 1 else ''} x {threads} thread{'s' if threads > 1 else ''}"
    times.append({"wall_s": round(wall_s, 1), "cells": n_cells, "packing": packed, "stages": stages})
    write_json(path, times)


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("grid", type=Path)
    ap.add_argument("--workers", type=int, default=None, help="processes side by side (default: cores // threads)")
    ap.add_argument("--threads", type=int, default=1, help="OpenMP/MKL threads per process (default 1)")
    ap.add_argument("--stage", choices=STAGES, default=None, help="Run only this stage (default: all).")
    ap.add_argument("--force-eval", action="store_true", help="Re-evaluate runs that already have metrics.")
    ap.add_argument("--only", default="", help="Comma-separated variant names to run (default: all).")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=YAML", help="Replace a key of the grid file.")
    args = ap.parse_args()
    try:
        procs, threads = packing(args.workers, args.threads, os.cpu_count() or 1)
        sets = grid_sets(args.set)
    except ValueError as err:
        ap.error(str(err))
    grid = load_grid(args.grid, sets)
    all_cells = cells(grid)
    todo = [c for c in all_cells if not args.only or c["variant"] in args.only.split(",")]
    stages = set(STAGES) if args.stage is None else {args.stage}
    if stages - {"report"}:
        t0 = time.perf_counter()
        failures = []
        with ThreadPoolExecutor(max_workers=procs) as pool:
            futures = [pool.submit(run_cell, c, grid, stages, args.force_eval, threads) for c in todo]
            for i, fut in enumerate(futures):
                try:
                    c = fut.result()
                    print(
                        f"[{i + 1}/{len(todo)}] {c['group']} seed {c['seed']} done ({time.perf_counter() - t0:.0f} s)",
                        flush=True,
                    )
                except RuntimeError as err:
                    failures.append(str(err))
                    print(f"[{i + 1}/{len(todo)}] FAILED: {err}", flush=True)
        record_time(grid["out"], time.perf_counter() - t0, len(todo), procs, threads, sorted(stages))
        if failures:
            raise SystemExit(f"{len(failures)} run(s) failed; first: {failures[0]}")
    res = report(grid, all_cells)
    print((grid["out"] / "results.md").read_text())
    print(f"wrote {grid['out'] / 'results.json'} ({len(res['rows'])} rows)")


if __name__ == "__main__":
    main()
