#!/usr/bin/env python
"""Learning curve of one run: generate from every checkpoint, evaluate, and apply the convergence rule.

    python ../../recipes/learning_curve.py exp/small16/seed0 --ref data/cb16/data/test \\
        --classifier data/cb16/classifier --seeds 0-599 --floor data/cb16/floor_valid/metrics.json

The run must keep its checkpoints (`train.keep_ckpts: 0` keeps all; the default 3 deletes older
ones) at a fixed `train.ckpt_every`. Each checkpoint is sampled with `audiodiff generate` (the same
seeds every time, EMA weights, the run's own sampler unless `--generate` says otherwise) and scored
with `audiodiff evaluate` against `--ref` (both through the CLI, in this process), into
`<out>/step_<N>/{generated,eval}`; finished steps are skipped, so the curve can be extended while
the run goes on.

Wall time of a checkpoint is the training time train recorded in it (train_seconds): seconds from
the first step of each process that trained the run to the checkpoint, summed over a run resumed in
pieces (--auto-resume, train.max_minutes slices), without their set-up and the idle time between them;
on a shared machine it includes the time others took. A checkpoint written before train recorded it
gets the old reading: its file's modification time minus the start of training (the first TensorBoard
event file's creation time), idle time before a resume included. curve.md says which it holds.

The convergence rule (issue 16): the last doubling of steps improves each metric by < 5%. With S
the last step and H the checkpoint step nearest S / 2, improvement = (m_S - m_H) / |m_H| for a
metric where higher is better (`--higher`, default evaluate's list: the inception scores, PESQ),
(|m_H| - |m_S|) / |m_H| for a signed error, best at 0 (eval.context.direction: power_spectrum_db_*,
psd_band*_err_db), (m_H - m_S) / |m_H| otherwise; "converged" when improvement < 0.05 (a metric
that got worse has converged by this rule). curve.png titles each metric with its direction.

Writes `<out>/curve.json`, `<out>/curve.md` (metric per step and wall time, the real-data floor,
the rule's verdict per metric), `<out>/curve.png` (each metric against steps and, below, against
wall time; `--compare OTHER/curve.json` draws other runs' curves beside this one) and, for images,
`<out>/curve_samples.png` (the first 16 samples of every checkpoint, one row per step: look at
them, not only at the numbers).

A vocoder's curve vocodes the same clips at every checkpoint (egs/asterisk_en/curve.sh):

    python ../../recipes/learning_curve.py exp/baseline --ref data/curve8 --seeds 0 \\
        --generate "--mels-from data/curve8 --sampler fast" --evaluate "--metrics mrstft,lsd,pesq" \\
        --metrics mrstft,lsd_db,pesq_wb

`--metrics` names metrics.json keys (lsd_db, pesq_wb), not evaluate's metric names: a key the
evaluation did not write is an error that lists the keys it did write.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ablate import _cpu_name, read_json  # noqa: E402  (the machine name the grids report)
from learning_curve_report import curve_markdown, plot_curves, sample_rows  # noqa: E402

from audiodiff.checkpoint import training_time, write_json  # noqa: E402
from audiodiff.eval.context import BETTER, HIGHER_IS_BETTER, direction, finished_evaluation, read_floor  # noqa: E402
from audiodiff.runfiles import run_start, set_complete, wall_seconds  # noqa: E402

DEFAULT_METRICS = ("inception_score", "classifier_fid", "pixel_histogram_tv", "power_spectrum_log10_l1")
THRESHOLD = 0.05
CKPT = re.compile(r"ckpt-(\d+)\.pt")


def checkpoints(run: Path) -> list[tuple[int, Path]]:
    """(step, file) of every ckpt-<step>.pt under <run>/checkpoints, by step."""
    found = []
    for path in (run / "checkpoints").glob("ckpt-*.pt"):
        match = CKPT.fullmatch(path.name)
        if match:
            found.append((int(match.group(1)), path))
    if not found:
        raise FileNotFoundError(f"no checkpoints in {run / 'checkpoints'} (want ckpt-<step>.pt)")
    return sorted(found)


def directions(metrics: list[str], higher: set[str]) -> dict[str, str]:
    """{metric: "higher", "lower" or "zero"}: "higher" for the --higher metrics, else eval.context's direction
    ("zero" for a signed error, best at 0; "lower" for the rest)."""
    return {m: "higher" if m in higher else ("lower" if direction(m) == "higher" else direction(m)) for m in metrics}


def improvement(before: float, after: float, better: str) -> float:
    """Relative improvement from `before` to `after`; positive = better. `better`: "higher", "lower" or
    "zero" (a signed error: the improvement of |m|)."""
    if better == "zero":
        before, after = abs(before), abs(after)
    gain = after - before if better == "higher" else before - after
    return gain / max(abs(before), 1e-12)


def convergence(rows: list[dict], metric: str, better: str, threshold: float = THRESHOLD) -> dict:
    """The rule on one metric: the last checkpoint against the one nearest half its step.

    Args:
        rows: one dict per checkpoint with "step" and `metric`, in any order.
        better: "higher", "lower" or "zero" (`directions`).
    Returns:
        {"metric", "better", "higher_is_better", "threshold", "from_step", "to_step", "before", "after",
        "improvement", "converged"}; converged is None when fewer than two checkpoints carry the metric.
    """
    if better not in BETTER:
        raise ValueError(f"convergence: better={better!r}; allowed: {', '.join(BETTER)}")
    points = sorted((r["step"], r[metric]) for r in rows if r.get(metric) is not None)
    verdict = {"metric": metric, "better": better, "higher_is_better": better == "higher", "threshold": threshold}
    if len(points) < 2:
        return verdict | {"converged": None}
    last_step, after = points[-1]
    half_step, before = min(points[:-1], key=lambda p: (abs(p[0] - last_step / 2), p[0]))
    gain = improvement(before, after, better)
    return verdict | {
        "from_step": half_step,
        "to_step": last_step,
        "before": before,
        "after": after,
        "improvement": gain,
        "converged": gain < threshold,
    }


def rule_by_step(rows: list[dict], better: dict[str, str]) -> list[bool | None]:
    """For each checkpoint (by step): does the rule hold for every metric of `better` ({metric: direction}),
    the curve cut at that step?"""
    rows = sorted(rows, key=lambda r: r["step"])
    held = []
    for k in range(len(rows)):
        verdicts = [convergence(rows[: k + 1], m, way)["converged"] for m, way in better.items()]
        held.append(None if None in verdicts else all(verdicts))
    return held


def _cli(argv: list[str]) -> None:
    """Run an `audiodiff` command in this process (no import per call); its error as RuntimeError."""
    import click

    from audiodiff.cli import main as audiodiff

    try:
        audiodiff.main(argv, standalone_mode=False)
    except click.ClickException as err:
        raise RuntimeError(f"audiodiff {' '.join(argv)}: {err.format_message()}") from None


def generate_with_cli(ckpt: Path, gen: Path, args: argparse.Namespace) -> None:
    """Sample `ckpt` into the generated set `gen` with `audiodiff generate`, the fixed seeds and --generate."""
    _cli(["generate", "--ckpt", str(ckpt), "--seeds", args.seeds, "--out", str(gen), "--device", "cpu",
          "--batch-size", "256", *args.generate])  # fmt: skip


def score_checkpoint(step: int, ckpt: Path, out: Path, args: argparse.Namespace, generate=generate_with_cli) -> dict:
    """Generate from `ckpt` with `generate(ckpt, folder, args)`, evaluate against the reference; the metrics.

    `generate` must leave a complete generated set (settings.json listing its files), as
    `audiodiff generate` does; another trainer's checkpoints bring their own (egs/asterisk_en/local/lmnt_train.py).
    """
    here = out / f"step_{step:08d}"
    gen, ev, asked = here / "generated", here / "eval", here / "curve_args.json"
    wanted = {"seeds": args.seed_list, "generate": args.generate}
    fresh = read_json(asked, None) != wanted
    if fresh or not set_complete(gen):  # other seeds or sampler options, or an interrupted generate: sample again
        (ev / "metrics.json").unlink(missing_ok=True)  # the scores of the set being replaced
        generate(ckpt, gen, args)
        write_json(asked, wanted)
    if fresh or args.force_eval or finished_evaluation(ev) is None:
        extra = ["--classifier", str(args.classifier)] if args.classifier else []
        _cli(["evaluate", "--ref", str(args.ref), "--gen", str(gen), "--out", str(ev), "--device", "cpu",
              *extra, *args.evaluate])  # fmt: skip
    report = finished_evaluation(ev)
    if report is None:
        raise RuntimeError(f"audiodiff evaluate wrote no usable {ev / 'metrics.json'}")
    missing = [m for m in args.metric_list if m not in report["metrics"]]
    if missing:  # a name evaluate does not write ('lsd' for lsd_db) would leave an empty column
        raise ValueError(
            f"--metrics {','.join(missing)}: not in {ev / 'metrics.json'}, which has {', '.join(report['metrics'])}"
        )
    return report["metrics"]


def run_checkpoints(run: Path) -> tuple[list[tuple[int, Path, float | None]], str]:
    """(step, file, wall seconds) of every checkpoint of an audiodiff run, and curve.md's sentence on
    what the wall seconds are (module doc): train_seconds where recorded, else mtime minus the start."""
    start, points, old, last = run_start(run), [], [], {}
    for step, ckpt in checkpoints(run):
        record = training_time(ckpt)  # the scalars only: its tensors are not read (mmap)
        if "train_seconds" in record:
            points.append((step, ckpt, float(record["train_seconds"])))
            last = record
        else:
            points.append((step, ckpt, wall_seconds(start, ckpt)))
            old.append(step)
    mtime = "the checkpoint file's mtime minus the run's first TensorBoard event, idle time between resumes included"
    if not last:
        return points, f"wall s: {mtime} (the checkpoints predate train_seconds)"
    pieces = int(last.get("train_pieces", 1))
    said = (
        f"wall s: training time summed over {pieces} resumed pieces (train_seconds; their set-up and the "
        "idle time between them not counted)"
        if pieces > 1
        else "wall s: training time in one piece (train_seconds, from the first step)"
    )
    if "train_seconds_note" in last:
        said += f"; {last['train_seconds_note']}"
    if old:
        said += f"; steps {', '.join(map(str, old))} predate train_seconds: {mtime}"
    return points, said


def curve_rows(
    points: list[tuple[int, Path, float | None]], out: Path, args: argparse.Namespace, generate
) -> list[dict]:
    """One row per (step, checkpoint, wall seconds) in `points` (those in --steps): its step, wall_s, metrics."""
    rows = []
    for step, ckpt, wall in points:
        if args.step_list and step not in args.step_list:
            continue
        metrics = score_checkpoint(step, ckpt, out, args, generate)
        row = {"step": step, "wall_s": wall} | {m: metrics.get(m) for m in args.metric_list}
        rows.append(row)
        shown = " ".join(f"{m}={row[m]:.4g}" for m in args.metric_list if row[m] is not None)
        print(f"step {step} ({row['wall_s']} s): {shown}", flush=True)
    return rows


def _outputs(out: Path, rows: list[dict]) -> int | None:
    """How many files each checkpoint generated (seeds, or clips vocoded): the first row's set listing."""
    if not rows:
        return None
    listing = read_json(out / f"step_{rows[0]['step']:08d}" / "generated" / "settings.json", {})
    return len(listing.get("files", [])) or None


def learning_curve(
    run: Path,
    out: Path,
    args: argparse.Namespace,
    points: list[tuple[int, Path, float | None]] | None = None,
    generate=generate_with_cli,
    weights: str = "EMA weights",
    wall_note: str = "",
) -> dict:
    """Score the checkpoints of `run`; write curve.json/.md/.png under `out`; the result dict.

    Args:
        points: (step, checkpoint, wall seconds) to score; default: the audiodiff run's own (run_checkpoints).
        generate: fills a generated set from a checkpoint (score_checkpoint); default `audiodiff generate`.
        weights: which weights the generated sets use, for curve.md.
        wall_note: what the wall seconds of `points` are, for curve.md (the run's own: `run_checkpoints`).
    """
    out.mkdir(parents=True, exist_ok=True)
    if points is None:
        points, wall_note = run_checkpoints(run)
    rows = curve_rows(points, out, args, generate)
    higher = set(args.higher.split(","))
    better = directions(args.metric_list, higher)
    floor = {}
    if args.floor:
        floor = {m: v for m, v in read_floor(args.floor)["metrics"].items() if m in args.metric_list}
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
    )
    result = {
        "run": str(run),
        "label": args.label or run.name,
        "commit": commit.stdout.strip() or "unknown",
        "machine": f"{_cpu_name()}, training on 1 thread",
        "seeds": args.seeds,
        "n_seeds": len(args.seed_list),
        "n_outputs": _outputs(out, rows),
        "weights": weights,
        "wall_note": wall_note,
        "generate": " ".join(args.generate) or "the run's sampler",
        "metrics": args.metric_list,
        "higher": sorted(higher & set(args.metric_list)),
        "better": better,
        "floor": floor,
        "rows": rows,
        "convergence": [convergence(rows, m, way) for m, way in better.items()],
        "rule_by_step": rule_by_step(rows, better),
    }
    result["plotted"] = plot_curves(result, out / "curve.png", tuple(read_json(c, None) for c in args.compare))
    (out / "curve.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "curve.md").write_text(curve_markdown(result))
    sample_rows(out, [r["step"] for r in rows])
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from audiodiff.generate import parse_seeds

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="A run directory with checkpoints/ckpt-<step>.pt.")
    ap.add_argument("--ref", type=Path, required=True, help="Evaluation reference (as for `audiodiff evaluate`).")
    ap.add_argument("--classifier", type=Path, default=None, help="Classifier dir: adds classifier-FID and IS.")
    ap.add_argument("--seeds", default="0-255", help="Generation seeds, the same for every checkpoint.")
    ap.add_argument("--metrics", default=",".join(DEFAULT_METRICS), help="metrics.json keys on the curve.")
    ap.add_argument("--higher", default=",".join(HIGHER_IS_BETTER), help="Metrics where higher is better.")
    ap.add_argument("--floor", type=Path, default=None, help="metrics.json of real data vs --ref (a row + line).")
    ap.add_argument("--out", type=Path, default=None, help="Output folder (default <run>/curve).")
    ap.add_argument("--generate", default="", help="Extra `audiodiff generate` options, e.g. '--steps 100'.")
    ap.add_argument("--evaluate", default="", help="Extra `audiodiff evaluate` options, e.g. '--metrics fad'.")
    ap.add_argument("--steps", default="", help="Only these checkpoint steps, e.g. '500,1000,2000' (default: all).")
    ap.add_argument("--force-eval", action="store_true", help="Re-evaluate checkpoints that have metrics.")
    ap.add_argument("--label", default="", help="This run's name in curve.png (default: the run folder's).")
    ap.add_argument("--compare", type=Path, action="append", default=[], help="Another curve.json to plot beside.")
    args = ap.parse_args(argv)
    if not args.run.is_dir():
        ap.error(f"run directory not found: {args.run}")
    if args.floor and not args.floor.is_file():
        ap.error(f"--floor: file not found: {args.floor}")
    for other in args.compare:
        curve = read_json(other, None)
        if not (isinstance(curve, dict) and "rows" in curve):
            ap.error(f"--compare {other}: not a curve.json (a learning_curve.py result with 'rows')")
    try:
        args.seed_list = parse_seeds(args.seeds)
    except ValueError as err:
        ap.error(str(err))
    args.generate, args.evaluate = shlex.split(args.generate), shlex.split(args.evaluate)
    try:
        args.step_list = [int(s) for s in args.steps.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--steps {args.steps!r}: want checkpoint steps like '500,1000,2000'")
    args.metric_list = [m.strip() for m in args.metrics.split(",") if m.strip()]
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    try:
        result = learning_curve(args.run, args.out or args.run / "curve", args)
    except (FileNotFoundError, RuntimeError, ValueError) as err:
        raise SystemExit(f"learning_curve: {err}") from None
    print((Path(args.out or args.run / "curve") / "curve.md").read_text())
    return result


if __name__ == "__main__":
    main()
