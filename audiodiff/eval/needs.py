"""What metrics need, resolved once per evaluation: embeddings, classifier features, pairs, spectra.

Registry `NEEDS[kind][name]`: a function of the `Context` that computes one need for a kind of
set. `Context.need(name)` resolves it on first use and keeps it, so every embedder runs once
over each set and pairs are matched and loaded once, however many metrics use them. A need may
record what it did in the report (the embedder and its cache use, the number of pairs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from audiodiff.eval.sets import Sets


@dataclass
class Options:
    """The caller's choices that needs depend on (see `evaluate` for their meaning)."""

    embedder: str = "ge2e"
    embedder_weights: str | Path | None = None
    cache_dir: str | Path | None = None
    device: str = "cpu"
    progress: bool = False
    classifier: str | Path | None = None

    def cache(self) -> str | Path:
        from audiodiff.eval.weights import cache_dir

        return self.cache_dir or cache_dir("embeddings")


class RefGen(NamedTuple):
    """One quantity of the reference and of the generated set, at `sample_rate` (None: no rate)."""

    ref: Any
    gen: Any
    sample_rate: int | None = None


class ClassifierFeatures(NamedTuple):
    """A trained classifier's penultimate features of both sets, what to report of it and its settings."""

    model: Any
    ref: np.ndarray
    gen: np.ndarray
    info: dict
    settings: dict | None


class Context:
    """One evaluation: the sets, the options, the output folder, the report so far, needs resolved once."""

    def __init__(self, sets: Sets, options: Options, out: Path, report: dict) -> None:
        self.sets, self.options, self.out, self.report = sets, options, out, report
        self._resolved: dict[str, Any] = {}

    def need(self, name: str) -> Any:
        if name not in self._resolved:
            self._resolved[name] = NEEDS[self.sets.kind][name](self)
        return self._resolved[name]


def common_rate(paths: list[str]) -> int:
    """The lowest native sample rate among `paths`: the rate at which all of them carry content."""
    from audiodiff.audio.io import native_rate

    return min(native_rate(p) for p in paths)


# ------------------------------------------------------------------------------------------ audio


def _durations(seconds: list[float]) -> dict:
    return {"mean": float(np.mean(seconds)), "min": float(np.min(seconds)), "max": float(np.max(seconds))}


def audio_embeddings(ctx: Context) -> RefGen:
    """Embeddings (N, D) of both sets by the chosen embedder, through the cache; reports the embedder."""
    from audiodiff.eval.embeddings import ABOUT, build_embedder, embed_files

    opts, sets = ctx.options, ctx.sets
    model = build_embedder(opts.embedder, opts.device, opts.embedder_weights)
    cache = opts.cache()
    e_ref, info_ref = embed_files(sets.ref_items, model, cache, progress=opts.progress)
    e_gen, info_gen = embed_files(sets.gen_items, model, cache, progress=opts.progress)
    ctx.report["embedder"] = {
        "name": model.name,
        "version": model.version,
        "sample_rate": model.sample_rate,
        "dim": model.dim,
        "cache": str(cache),
        "about": ABOUT.get(model.name, "not described"),
    }
    ctx.report["durations_s"] = {"ref": _durations(info_ref["durations"]), "gen": _durations(info_gen["durations"])}
    ctx.report["cache"] = {
        "hits": info_ref["cache_hits"] + info_gen["cache_hits"],
        "computed": info_ref["computed"] + info_gen["computed"],
        "recomputed": info_ref["recomputed"] + info_gen["recomputed"],  # bad entries, each with why
    }
    return RefGen(e_ref, e_gen, model.sample_rate)  # the embedder resamples every clip to its rate


def audio_classifier(ctx: Context) -> ClassifierFeatures:
    """Penultimate features of both sets by the trained audio classifier, through the embedding cache."""
    from audiodiff.eval.classifier import ClassifierEmbedder
    from audiodiff.eval.embeddings import embed_files

    opts, sets = ctx.options, ctx.sets
    clf = ClassifierEmbedder(opts.classifier, opts.device)
    f_ref, _ = embed_files(sets.ref_items, clf, opts.cache(), progress=opts.progress)
    f_gen, _ = embed_files(sets.gen_items, clf, opts.cache(), progress=opts.progress)
    info = {
        "path": str(opts.classifier),
        "labels": clf.model.config.labels,
        "test_accuracy": clf.meta.get("test_accuracy"),
        "weights_sha1": clf.meta["weights_sha1"],
    }
    return ClassifierFeatures(clf.model, f_ref, f_gen, info, {"sample_rate": clf.sample_rate})


def audio_pairs(ctx: Context) -> list[tuple[str, str]]:
    """(reference, generated) paths matched by file name (vocoding); reports their number."""
    ref_by_name = {Path(p).stem: p for p in ctx.sets.ref_items}
    pairs = [(ref_by_name[Path(p).stem], p) for p in ctx.sets.gen_items if Path(p).stem in ref_by_name]
    if not pairs:
        raise ValueError("mrstft/lsd/band_lsd/pesq compare generated and reference files of the same name; none match")
    ctx.report["n_pairs"] = len(pairs)
    return pairs


def paired_audio(ctx: Context) -> RefGen:
    """The pairs' clips loaded at their common native rate: at 22.05 kHz the 8-11 kHz band, where
    the spectral regularizers act, stays in. -> RefGen(ref clips, gen clips, rate)"""
    from audiodiff.audio.io import load_audio

    pairs = ctx.need("pairs")
    sr = common_rate([p for pair in pairs for p in pair])
    return RefGen([load_audio(r, sr) for r, _ in pairs], [load_audio(g, sr) for _, g in pairs], sr)


def mean_spectra(ctx: Context) -> RefGen:
    """Mean power spectra (dB) of both sets at the lower native rate of the two: above a set's
    Nyquist there is only resampling residue, whose dB level would dominate the distance. Clips too
    short for the 1024-point centred STFT (under 513 samples: 128 ms at 4 kHz) are zero-padded to it;
    the report counts them per set (mean_spectrum_clips_zero_padded, only when any)."""
    from audiodiff.eval.metrics import mean_log_spectrum_padded

    ref, gen = ctx.sets.ref_items, ctx.sets.gen_items
    sr = common_rate(ref + gen)
    (ref_db, ref_padded), (gen_db, gen_padded) = mean_log_spectrum_padded(ref, sr), mean_log_spectrum_padded(gen, sr)
    if ref_padded or gen_padded:
        ctx.report["mean_spectrum_clips_zero_padded"] = {"ref": ref_padded, "gen": gen_padded}
    return RefGen(ref_db, gen_db, sr)


def analytic_psd(ctx: Context) -> RefGen:
    """The reference's analytic PSD (<ref>/analytic_psd.json, from `audiodiff prepare ar`) and the
    generated clips (N, T) at its rate, which must be their native rate. -> RefGen(spec, clips, rate)"""
    from audiodiff.audio.io import load_audio, native_rate
    from audiodiff.eval.psd import load_analytic_psd

    spec = load_analytic_psd(Path(ctx.sets.ref) / "analytic_psd.json")
    sr = int(spec["sample_rate"])
    gen = ctx.sets.gen_items
    rates = sorted({native_rate(p) for p in gen})
    if rates != [sr]:
        raise ValueError(f"band_psd: generated clips are at {rates} Hz; the analytic PSD is at {sr} Hz")
    clips = [load_audio(p, sr).numpy() for p in gen]
    if len({len(c) for c in clips}) != 1:
        raise ValueError(f"band_psd: generated clips differ in length ({sorted({len(c) for c in clips})})")
    return RefGen(spec, np.stack(clips), sr)


# ----------------------------------------------------------------------------------------- images


def images(ctx: Context) -> RefGen:
    """The uint8 images (N, C, H, W) of both sets, as read."""
    return RefGen(ctx.sets.ref_items, ctx.sets.gen_items)


def radial_spectra(ctx: Context) -> RefGen:
    """Radially averaged power spectra of both sets, computed once for the distance and the plot."""
    from audiodiff.eval.images import radial_power_spectrum

    return RefGen(radial_power_spectrum(ctx.sets.ref_items), radial_power_spectrum(ctx.sets.gen_items))


def image_classifier(ctx: Context) -> ClassifierFeatures:
    """Penultimate features of both image sets by the trained image classifier."""
    from audiodiff.eval.classifier import image_features, load_classifier

    model, meta = load_classifier(ctx.options.classifier, ctx.options.device)
    f_ref, f_gen = image_features(model, ctx.sets.ref_items), image_features(model, ctx.sets.gen_items)
    info = {"path": str(ctx.options.classifier), "test_accuracy": meta.get("test_accuracy")}
    return ClassifierFeatures(model, f_ref, f_gen, info | {"weights_sha1": meta["weights_sha1"]}, None)


NEEDS = {
    "audio": {
        "embeddings": audio_embeddings,
        "classifier": audio_classifier,
        "pairs": audio_pairs,
        "paired_audio": paired_audio,
        "mean_spectra": mean_spectra,
        "analytic_psd": analytic_psd,
    },
    "images": {"images": images, "radial_spectra": radial_spectra, "classifier": image_classifier},
}
