#!/usr/bin/env python
"""Run a regularizer ablation grid (variants x lambdas x seeds) and tabulate mean and spread.

    python ../../recipes/ablate.py grid.yaml [--workers 2] [--threads 1] [--stage train|generate|evaluate|report]

The grid file (YAML, paths relative to it):

    config: conf/ablation.yaml           # the shared base config (model, diffusion, data, budget)
    train_data: data/digits/data/train
    ref: data/digits/data/test           # evaluation reference (the unseen-voice test split)
    out: exp/ablation                    # one run directory per (variant, lambda, seed)
    seeds: [0, 1, 2]                     # train.seed of each repetition
    generate: [--seeds, 0-63, --seconds, "1.0"]          # extra `audiodiff generate` options (a path after
                                                         # --mels-from or --vocoder, or in --mels-from=PATH,
                                                         # is relative to the grid file; a shipped model's
                                                         # name after --vocoder stays a name)
    evaluate: [--metrics, "fad,kad,ndb,mean_spectrum"]   # extra `audiodiff evaluate` options (likewise the
                                                         # path of each path option, e.g. --floor DIR,
                                                         # --classifier DIR or --embedder-weights=FILE)
    classifier: data/digits/classifier   # optional: adds classifier-FID, IS, mIS, AM
    report: [metrics.fad_ge2e, metrics.kad_ge2e, metrics.mean_spectrum_db_l1]   # metrics.json keys, in table order
    overrides: [train.fast_cpu=auto]     # optional: appended to every run's `audiodiff train`
    archive: ../../docs/ablation/grids/digits   # optional: finished cells' scores, to commit (below)
    better: {metrics.some_key: higher}   # optional: which way a report key is better (higher|lower), over
                                         # audiodiff.eval.context.direction's table (the comparison, below)
    alpha: 0.05                          # optional: the level of the comparison with the baseline, in (0, 1)

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
A grid outlives its machine with `archive:` (a folder, committed; checkpoints are too big, scores a few
KB): as each cell finishes (trained, evaluation finished), and in every report for the finished cells
(so a grid started before the key existed is archived by `--stage report`), its record goes to
`<archive>/<group>/seed<k>/`: eval/metrics.json, timing.json, config.yaml, run.yaml (defaults relative
to the grid file) and archived.json (the commit train's log.txt recorded, the machine, the date, the
overrides, the content of each defaults file outside the checkout; its metrics.json names the classifier
that scored it, by the weights sha1 evaluate wrote). A cell without a finished evaluation whose record the
archive holds (a new machine) is restored from it (those files, into its run directory) and runs no stage:
no checkpoint, no clips (`--force-eval` skips it with a line); a record made with another run.yaml or
overrides than the grid composes now (a defaults file inside the checkout compared by its path in it, one
outside it, where another machine keeps it elsewhere, by its YAML content) is an error naming the cell
(delete the archive entry and the run to train it anew), and so is one whose metrics.json's classifier
weights sha1 is not that of the grid's classifier file (a classifier retrained on a new machine scores the
same clips differently: keep the grid's classifier beside its archive and point `classifier:` at it; a
record scored without a classifier, or a grid without one, is not checked). An archived record is never
replaced: a run whose metrics differ from it gets a line and the archive is kept. A record
without run.yaml or a readable archived.json is an error naming it when restored (the run that made it
rewrites it). A restored cell whose entry is deleted (to train it anew) is not archived again from its
copy: delete its run directory too. An archive that cannot be written (read-only) fails each finished
cell with a line naming it (`--set archive=null` goes without it). The report counts restored cells like
the others and lists them with their commit.
`--set KEY=YAML` replaces a key of the grid file for one invocation, e.g. a smoke of a grid at a tiny
budget in a scratch folder: `--set out=exp/smoke --set 'seeds=[0]' --set 'overrides=[train.steps=2]'
--set 'generate=[--seeds, 0-3]'` (paths relative to the grid file, as in it; `--set classifier=null`
leaves an optional key out; list keys must be YAML lists; `--set out=...` leaves the grid's archive out,
so a smoke's cells do not land in it, unless `--set archive=DIR` is given too; `--set overrides=...` other
than the grid file's is refused without `--set out=` another folder: in the grid's out folder those cells
would be skipped as finished, reported and archived as the grid's).
The report (`<out>/results.json`, `<out>/results.md`) gives mean +- sample std over seeds (one seed
has none: "x (1 seed)", std null in results.json, no error bar; a metric missing from some of a
row's cells says over how many seeds it is taken: "x +- s (2 of 3 seeds)"), the
training budget (steps, wall seconds per run: the train command's time, plus for a cell resumed
after an interrupted grid its earlier pieces' train_seconds, `trained_before`), the machine and the
commit, the classifier that scored the cells (weights sha1, test accuracy) and train.fast_cpu as train
resolved it, with a WARNING line naming the cells when these differ (a classifier retrained on a new
machine); `<out>/results.png` (linked from results.md) draws it: one panel per report key, a bar per
group with the seed std and each seed's value, the baseline (the first group without a regularizer)
as a dashed line. Under the mean +- std table, each group is compared with that baseline, per report
key (results.json: row["versus_baseline"][key], the settings under "versus_baseline"): the difference of
means (group - baseline), the p of Welch's t-test (two-sided, scipy.stats.ttest_ind equal_var=False; None,
with why, when a side has fewer than 2 values or neither has any spread), the p adjusted by Holm-Bonferroni
over the groups with a p on that key, and a verdict: "helps" / "hurts" when the adjusted p is below
`alpha` (default 0.05) and the difference is in the better / worse direction, "ties" when it is not
(not significant: not shown equal), null where there is no p (one line per reason under the table).
A signed error (power_spectrum_db_*, level_err_db_*, mean_spectrum_err_db_*, psd_band<i>_err_db: best at
zero) keeps its signed difference of means, but the test and the verdict are of each seed's magnitude
|error| (lower is better: does the group land closer to zero than the baseline; "tested": "|error|",
"abs_difference"). Which way is better comes from audiodiff.eval.context.direction, overridden per key by
the grid's `better:` (a signed key given higher|lower is tested on its mean). A grid without a baseline
group, or with one seed per group, gets a line saying why there is no comparison.
`--only a,b` runs, restores, archives and reports only
those variants' cells (results.md names them; a record of another variant is not read); a name the grid
does not have is an error.
Packing: `--workers` processes run cells side by side, each with `--threads` OpenMP/MKL threads;
workers x threads may not exceed the cores. The default is one thread per process and as many
processes as cores (on a busy 2-core box a 2-thread job next to another job slowed ~7x, its threads
waiting on each other; one thread per process was steadier). Measured on an idle 2-core AMD EPYC
(a 4-run checkerboard grid, 400 steps a run, docs/results.md): 2 processes x 1 thread 325 s, 1 x 2
433 s, so the default is 1.33x faster there; time a grid with each before changing it on another box.
Each invocation's wall time and packing are appended to `<out>/grid_time.json` (under a lock: two
invocations on one out folder keep both entries) with how many of its cells ran a stage (trained,
generated or evaluated), were skipped as finished, were restored from the archive or failed; the
report's wall time is the sum over them (this out folder's invocations, killed ones not recorded), with
each one's count of cells that ran, and says how many of the reported cells were trained here and how
many came from the archive (trained elsewhere: their time is not in it).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from audiodiff.checkpoint import latest_checkpoint, training_time, write_json
from audiodiff.eval.context import finished_evaluation
from audiodiff.runfiles import run_start, set_complete, wall_seconds

sys.path.insert(0, str(Path(__file__).parent))  # the report and the archive live beside it (also for tests)
# the archive of finished cells' scores (recipes/ablate_archive.py); grid_classifier_sha1 for the tests
from ablate_archive import _check_identity, archive_cell, grid_classifier_sha1, restore_cell  # noqa: E402, F401

# _cpu_name: recipes/learning_curve.py and level_errors.py import it from here; holm for the tests
from ablate_report import ALPHA, _cell_name, _cpu_name, holm, read_json, report  # noqa: E402, F401

STAGES = ("train", "generate", "evaluate", "report")


def _fmt_lam(lam: float) -> str:
    return f"{lam:g}"


GRID_KEYS = ("config", "train_data", "ref", "out", "seeds", "variants", "generate", "evaluate", "classifier", "report",
             "overrides", "archive", "better", "alpha")  # fmt: skip
LIST_KEYS = ("seeds", "variants", "generate", "evaluate", "report", "overrides")
# `generate` and `evaluate` options whose value is a path (a vocoder grid's test mels, a mel grid's vocoder;
# every click.Path option of `audiodiff evaluate`): relative to the grid file like its other paths, not to
# wherever ablate.py is started
GENERATE_PATHS = ("--mels-from", "--vocoder")
EVALUATE_PATHS = ("--ref", "--gen", "--out", "--embedder-weights", "--cache", "--classifier", "--csv", "--floor")
# Path options that also take a name: generate's --vocoder, like --ckpt, a model shipped in the package
# (`audiodiff pretrained`; audiodiff.builders.load_for_generation)
NAME_OR_PATH = ("--vocoder",)


def _resolved(opt: str, value: str, root: Path) -> str:
    """`value` of path option `opt` resolved against `root`; a shipped model's name after a NAME_OR_PATH
    option stays as written when nothing of that name lies beside the grid file."""
    if opt in NAME_OR_PATH and not (root / value).exists():
        from audiodiff.release import shipped_models

        if value in shipped_models():
            return value
    return str((root / value).resolve())


def resolve_path_options(args: list, options: tuple[str, ...], root: Path) -> list[str]:
    """`args` (a grid's generate or evaluate list) as strings, the value of each of `options` (the item after
    it, or the PATH of `--opt=PATH`, click's other spelling) resolved against `root`; absolute ones stay,
    and so does a shipped model's name (`NAME_OR_PATH`)."""
    args = [str(x) for x in args]
    out = list(args)
    for i, arg in enumerate(args):
        opt, eq, value = arg.partition("=")
        if eq and opt in options:
            out[i] = f"{opt}={_resolved(opt, value, root)}"
        elif i and args[i - 1] in options:
            out[i] = _resolved(args[i - 1], arg, root)
    return out


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
    """The grid file at `path`, its keys replaced by `sets` (`grid_sets`), paths resolved against its folder.
    SystemExit when `sets` gives other overrides than the file (none and [] are the same) in the file's out folder."""
    grid, sets = yaml.safe_load(path.read_text()), sets or {}
    own = grid if isinstance(grid, dict) else {}  # the grid file's keys, before --set
    if isinstance(grid, dict):  # --set KEY=null leaves an optional key out (e.g. classifier)
        grid = {k: v for k, v in {**grid, **sets}.items() if not (k in sets and v is None)}
        if "out" in sets and "archive" in grid and "archive" not in sets:  # a smoke's cells are not the grid's
            del grid["archive"]
            print(f"--set out={sets['out']}: the grid's archive is left out (--set archive=DIR to use one)")
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
    for key in ("config", "train_data", "ref", "out", "classifier", "archive"):
        if key in grid:
            grid[key] = (root / grid[key]).resolve()
    for key, options in (("generate", GENERATE_PATHS), ("evaluate", EVALUATE_PATHS)):
        if key in grid:
            grid[key] = resolve_path_options(grid[key], options, root)
    own_out = (root / own["out"]).resolve() if "out" in own else None
    if "overrides" in sets and (sets["overrides"] or []) != (own.get("overrides") or []) and grid["out"] == own_out:
        raise SystemExit(  # cells trained otherwise would be skipped as finished, reported and archived as the grid's
            f"--set overrides={json.dumps(sets['overrides'])} trains the grid's cells with other overrides than {path} "
            f"gives them: in its out folder {grid['out']} they would be reported (and archived) as its cells; add "
            "--set out=DIR (another folder)"
        )
    names = [v["name"] for v in grid["variants"]]
    if len(set(names)) != len(names):
        raise SystemExit(f"{path}: variant names repeat: {names}")
    _check_comparison(grid, lambda key: "--set" if key in sets else str(path))
    return grid


def _check_comparison(grid: dict, where) -> None:
    """SystemExit in one line naming the key (`where(key)`: the grid file or --set) for a `better:` that is not a
    mapping of report keys to higher|lower, or an `alpha` outside (0, 1)."""
    given, keys = grid.get("better"), grid.get("report") or []
    if given is not None and not isinstance(given, dict):
        raise SystemExit(f"{where('better')}: better must be a mapping {{metrics.KEY: higher|lower}}, got {given!r}")
    for key, way in (given or {}).items():
        if way not in ("higher", "lower"):
            raise SystemExit(f"{where('better')}: better: {key}: {way!r} is not allowed; allowed: higher, lower")
        if key not in keys:
            raise SystemExit(f"{where('better')}: better: {key} is not a report key; report: {', '.join(keys)}")
    alpha = grid.get("alpha", ALPHA)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise SystemExit(f"{where('alpha')}: alpha must be a number in (0, 1) (the tests' level), got {alpha!r}")


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


def trained_before(run: Path) -> float:
    """Training seconds a cell's run already holds (an interrupted grid: the train command resumes it),
    0 for a new one: its latest checkpoint's train_seconds, or mtime minus the start for an older one."""
    ckpt = latest_checkpoint(run / "checkpoints")
    if ckpt is None:
        return 0.0
    try:
        seconds = training_time(ckpt).get("train_seconds")
    except ValueError as err:  # the cell fails (main lists it), as its train command would, not the whole grid
        raise RuntimeError(f"{run}: {err}") from err
    return float(seconds) if seconds is not None else max(wall_seconds(run_start(run), ckpt) or 0.0, 0.0)


def run_cell(cell: dict, grid: dict, stages: set[str], force_eval: bool, threads: int = 1) -> str:
    """Run the cell's unfinished `stages`: "ran" when it ran at least one (train, generate or evaluate),
    "skipped" when all were finished, "restored" when its scores come from the grid's archive (now or
    in an earlier invocation). RuntimeError naming the cell when a stage fails."""
    run: Path = cell["run"]
    run.mkdir(parents=True, exist_ok=True)
    if restore_cell(cell, grid) or (run / "archived.json").is_file():  # scores only: no checkpoint, no clips
        info = read_json(run / "archived.json", {})
        metrics = finished_evaluation(run / "eval")
        _check_identity(cell, grid, (run / "run.yaml").read_text(), info, metrics, run / "archived.json")
        if metrics is None:
            raise RuntimeError(f"{_cell_name(cell)}: {run} was restored from an archive but has no metrics.json; "
                               "delete the run directory to restore or train it again")  # fmt: skip
        if force_eval and "evaluate" in stages:
            print(
                f"{_cell_name(cell)}: restored from the archive, no generated clips: --force-eval skips it", flush=True
            )
        return "restored"
    log = run / "ablate.log"
    cfg_path = run / "run.yaml"
    cfg_path.write_text(cell["config"])
    timing_path = run / "timing.json"
    timing = read_json(timing_path, {})
    cli = [sys.executable, "-m", "audiodiff.cli"]
    outcome = "skipped"
    if "train" in stages and not timing.get("train_done"):
        outcome = "ran"
        before, t0 = trained_before(run), time.perf_counter()
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
        timing.update(train_s=round(before + time.perf_counter() - t0, 1), train_done=True)
        write_json(timing_path, timing)
    gen, ev = run / "generated", run / "eval"
    if "generate" in stages and not set_complete(gen):
        if (gen / "settings.json").exists():
            print(f"{gen}: generate did not finish this set; generating it again", flush=True)
        (ev / "metrics.json").unlink(missing_ok=True)  # the scores of the set being replaced
        t0, outcome = time.perf_counter(), "ran"
        _sh(
            [*cli, "generate", "--ckpt", str(run), "--out", str(gen), "--device", "cpu", *grid.get("generate", [])],
            log,
            threads,
        )
        timing["generate_s"] = round(time.perf_counter() - t0, 1)
        write_json(timing_path, timing)
    if "evaluate" in stages and (force_eval or finished_evaluation(ev) is None):
        outcome = "ran"
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
    archive_cell(cell, grid)  # right away: a lost machine keeps the finished cells' scores
    return outcome


def record_time(
    out: Path, wall_s: float, n_cells: int, procs: int, threads: int, stages: list[str], outcomes: dict | None = None
) -> None:
    """Append one invocation's wall time and packing to <out>/grid_time.json: its cells (all it was given)
    and, from `outcomes` (`run_cell`'s counts), how many ran a stage, were skipped as finished, were
    restored from the archive and failed. Entries written before the counts existed have only "cells".
    The read-append-write holds a lock (<out>/.grid_time.json.lock): two invocations on one out folder keep
    both entries; the file is replaced whole (`write_json`), never left half written."""
    path = out / "grid_time.json"
    out.mkdir(parents=True, exist_ok=True)
    packed = f"{procs} process{'es' if procs > 1 else ''} x {threads} thread{'s' if threads > 1 else ''}"
    entry = {"wall_s": round(wall_s, 1), "cells": n_cells, "packing": packed, "stages": stages}
    if outcomes is not None:
        entry.update({k: outcomes.get(k, 0) for k in ("ran", "skipped", "restored", "failed")})
    with (out / f".{path.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one writer at a time, across processes; released on close
        times = read_json(path, [])
        times.append(entry)
        write_json(path, times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("grid", type=Path)
    ap.add_argument("--workers", type=int, default=None, help="processes side by side (default: cores // threads)")
    ap.add_argument("--threads", type=int, default=1, help="OpenMP/MKL threads per process (default 1)")
    ap.add_argument("--stage", choices=STAGES, default=None, help="Run only this stage (default: all).")
    ap.add_argument("--force-eval", action="store_true", help="Re-evaluate runs that already have metrics.")
    ap.add_argument("--only", default="", help="Comma-separated variant names to run and report (default: all).")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=YAML", help="Replace a key of the grid file.")
    args = ap.parse_args()
    try:
        procs, threads = packing(args.workers, args.threads, os.cpu_count() or 1)
        sets = grid_sets(args.set)
    except ValueError as err:
        ap.error(str(err))
    grid = load_grid(args.grid, sets)
    names, only = [v["name"] for v in grid["variants"]], [n for n in args.only.split(",") if n]
    unknown = [n for n in only if n not in names]  # a typo would report fewer variants (or none) over results.md
    if unknown:
        ap.error(
            f"--only {args.only}: no variant {', '.join(unknown)} in {args.grid}; its variants: {', '.join(names)}"
        )
    todo = [c for c in cells(grid) if not only or c["variant"] in only]  # also the report's
    stages = set(STAGES) if args.stage is None else {args.stage}
    if stages - {"report"}:
        t0 = time.perf_counter()
        failures, outcomes = [], {}
        with ThreadPoolExecutor(max_workers=procs) as pool:
            futures = [pool.submit(run_cell, c, grid, stages, args.force_eval, threads) for c in todo]
            for i, (c, fut) in enumerate(zip(todo, futures)):
                try:
                    outcome = fut.result()
                    said, elapsed = "done" if outcome == "ran" else outcome, time.perf_counter() - t0
                    print(f"[{i + 1}/{len(todo)}] {_cell_name(c)} {said} ({elapsed:.0f} s)", flush=True)
                except RuntimeError as err:
                    failures.append(str(err))
                    outcome = "failed"
                    print(f"[{i + 1}/{len(todo)}] FAILED: {err}", flush=True)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
        record_time(grid["out"], time.perf_counter() - t0, len(todo), procs, threads, sorted(stages), outcomes)
        if failures:
            raise SystemExit(f"{len(failures)} run(s) failed; first: {failures[0]}")
    if "archive" in grid:  # cells finished before the key existed, and cells another machine archived
        for c in todo:
            try:
                restore_cell(c, grid) or archive_cell(c, grid)
            except RuntimeError as err:
                raise SystemExit(str(err)) from None
    if not any(finished_evaluation(c["run"] / "eval") for c in todo):
        hint = "" if "archive" in grid else " (no archive: --set archive=DIR restores archived cells)"
        raise SystemExit(f"{grid['out']}: no finished cell to report{hint}")
    res = report(grid, todo)
    print((grid["out"] / "results.md").read_text())
    print(f"wrote {grid['out'] / 'results.json'} ({len(res['rows'])} rows)")


if __name__ == "__main__":
    main()
