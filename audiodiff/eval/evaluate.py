"""`audiodiff evaluate`: a generated set against a reference set; metrics.json/.md, plots, report.html.

The sets are read once, as their kind says (`audiodiff.eval.sets.KINDS`: audio clips or images);
the metrics asked for come from the registry (`audiodiff.eval.registry.METRICS`), each declaring
what it needs (embeddings, classifier features, pairs, spectra, images); every need is resolved
once (`audiodiff.eval.needs`), however many metrics share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from audiodiff.eval.context import read_floor, run_context
from audiodiff.eval.needs import Context, Options
from audiodiff.eval.registry import METRICS, check_metrics
from audiodiff.eval.report import write_metrics, write_report
from audiodiff.eval.results import append_csv, csv_row, per_file_scores, source_commit, write_per_file
from audiodiff.eval.sets import KINDS, detect_kind
from audiodiff.runfiles import writable_dir


def _asked(kind: str, metrics: Sequence[str] | None, classifier: str | Path | None) -> list[str]:
    """The metrics to run (the kind's defaults when None; "classifier" added with a classifier), checked."""
    if kind not in KINDS:
        raise ValueError(f"unknown set kind {kind!r}; choose from {list(KINDS)}")
    asked = list(KINDS[kind].defaults if metrics is None else metrics)
    if classifier and "classifier" not in asked:
        asked.append("classifier")
    check_metrics(asked, kind)
    if "classifier" in asked and not classifier:
        raise ValueError("metric 'classifier' needs --classifier DIR (from `audiodiff train-classifier`)")
    return asked


def evaluate(
    ref: str | Path,
    gen: str | Path,
    out: str | Path,
    metrics: Sequence[str] | None = None,
    embedder: str = "ge2e",
    cache_dir: str | Path | None = None,
    device: str = "cpu",
    progress: bool = False,
    classifier: str | Path | None = None,
    embedder_weights: str | Path | None = None,
    on_bad_audio: str = "error",
    kind: str | None = None,
    csv: str | Path | None = None,
    per_file: bool = False,
    floor: str | Path | None = None,
) -> dict:
    """Compare the set under `gen` with `ref`; write metrics.json/.md, plots and (audio) report.html.

    Args:
        ref, gen: audio (data dirs or folders) or images (a split with images.npy, or a folder of PNGs).
        out: the output folder.
        metrics: names from `METRICS` that apply to the sets' kind; None: the kind's defaults.
        embedder, embedder_weights, cache_dir: the audio embedder (`EMBEDDERS`) for fad, fad_inf,
            kad, ndb, its weights and the embedding cache; `embedder_weights` is also the
            Inception weights file of "inception_fid".
        classifier: a directory from `audiodiff train-classifier`; adds the "classifier" metrics
            (classifier-FID, IS, mIS, AM), which may be named only then.
        on_bad_audio: every audio file is audited first (missing, unreadable, empty, NaN/inf,
            shorter than `MIN_SECONDS`): "error" stops listing all bad files by id, "skip" scores
            the others and lists the left-out files under "skipped_audio" in the report.
        kind: "audio" or "images" (`KINDS`); None: "images" when `ref` holds images.npy.
        csv: a results table shared by many evaluations: one row (gen, ref, embedder, set sizes,
            metrics) is appended (`audiodiff.eval.results.append_csv`).
        per_file: audio: also write per_file.csv, each generated clip's distance to the reference
            set in the embedder's space (`audiodiff.eval.results.per_file_scores`).
        floor: a real-vs-real evaluation (its folder or metrics.json): its metrics are recorded as
            the real-data floor of each metric (report["floor"]) and shown in report.html.

    Returns:
        The report written to metrics.json.
    """
    kind = kind or detect_kind(ref)
    asked = _asked(kind, metrics, classifier)
    _check_outputs(kind, per_file, csv)
    floors = read_floor(floor) if floor is not None else None
    sets = KINDS[kind].read(ref, gen, on_bad_audio)
    out = writable_dir(out, "evaluate: output folder")
    report = KINDS[kind].head(sets, asked) | {"commit": source_commit(), "run": run_context(gen)}
    if floors:
        report["floor"] = floors
    options = Options(embedder, embedder_weights, cache_dir, device, progress, classifier)
    ctx = Context(sets, options, out, report)
    for name in (n for n in METRICS if n in asked):  # registry order: the order of the report's rows
        scores = METRICS[name].compute(ctx)
        report["metrics"].update(scores.values)
        if scores.settings is not None:
            report.setdefault("settings", {})[name] = scores.settings
        report.update(scores.extra)
    _write_outputs(ctx, kind, per_file, csv)
    return report


def _check_outputs(kind: str, per_file: bool, csv: str | Path | None) -> None:
    """One-line errors for output options that cannot be honoured, before any work is done."""
    if per_file and kind != "audio":
        raise ValueError(f"--per-file scores audio clips in an embedding space; these sets hold {kind}")
    if csv is not None and not Path(csv).parent.is_dir():
        raise FileNotFoundError(f"--csv {csv}: folder {Path(csv).parent} does not exist")


def _write_outputs(ctx: Context, kind: str, per_file: bool, csv: str | Path | None) -> None:
    """per_file.csv (on request), report.html (clip sets), metrics.md/.json and the shared CSV row."""
    sets, out, report = ctx.sets, ctx.out, ctx.report
    if per_file:
        e = ctx.need("embeddings")
        per = per_file_scores(e.ref, e.gen)
        write_per_file(out / "per_file.csv", sets.ref_items, sets.gen_items, per, report["embedder"]["name"])
    if KINDS[kind].clips:
        write_report(out / "report.html", report, sets.ref_items, sets.gen_items)
    write_metrics(out, report, KINDS[kind].header(sets, report))  # metrics.json last: the mark of a finished run
    if csv is not None:
        append_csv(csv, csv_row(report))
