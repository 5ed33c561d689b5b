"""The metrics of `audiodiff evaluate`, one small function each, and what each needs.

Registry `METRICS`: name -> `Metric(needs, compute)`. A metric applies to a kind of set
(audio, images) when that kind provides all its needs (`audiodiff.eval.needs.NEEDS`); the
evaluator resolves each need once and runs the metrics in registry order, which is the order of
metrics.md's rows. `compute(ctx)` returns `Scores`: the values for report["metrics"], the
settings for report["settings"][name] (audio only) and any further report entries.

A score computed in an embedding space carries its embedder in its name, as the field writes
it (fadtk's `FAD_<model>` columns): "fad" with GE2E is reported as `fad_ge2e`, with VGGish as
`fad_vggish`; likewise `fad_inf_*`, `kad_*`, `ndb_k_*`. The registry names (`--metrics fad`) stay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from audiodiff.eval.needs import NEEDS, Context, RefGen


@dataclass
class Scores:
    """One metric's result: report["metrics"] values, report["settings"][name], further report entries."""

    values: dict[str, float]
    settings: dict | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    """A metric: the needs (`NEEDS` names) it uses and the function computing it from the `Context`."""

    needs: tuple[str, ...]
    compute: Callable[[Context], Scores]


# name -> Metric, filled by @register below; registry order is the order of the report's metrics
# (and of metrics.md's rows).
METRICS: dict[str, Metric] = {}


def register(name: str, *needs: str) -> Callable[[Callable[[Context], Scores]], Callable[[Context], Scores]]:
    """Add the decorated `compute(ctx) -> Scores` to `METRICS` as metric `name`, needing `needs`."""

    def add(compute: Callable[[Context], Scores]) -> Callable[[Context], Scores]:
        if name in METRICS:
            raise ValueError(f"metric {name!r} is registered twice")
        METRICS[name] = Metric(needs, compute)
        return compute

    return add


# The report keys of the scores computed in an embedding space, before the embedder's name is added.
EMBEDDED_KEYS = ("fad", "fad_inf", "kad", "ndb_k")


def embedded(key: str, embedder: str) -> str:
    """The report name of a score computed in `embedder`'s space: ("fad", "ge2e") -> "fad_ge2e"."""
    return f"{key}_{embedder}"


def current_names(metrics: dict, embedder: str | None) -> dict:
    """A metrics table of a metrics.json written before issue 17 ("fad") with today's names ("fad_ge2e")."""
    if embedder is None:
        return dict(metrics)
    return {embedded(k, embedder) if k in EMBEDDED_KEYS else k: v for k, v in metrics.items()}


def _named(ctx: Context, key: str) -> str:
    return embedded(key, ctx.report["embedder"]["name"])


@register("fad", "embeddings")
def _fad(ctx: Context) -> Scores:
    from audiodiff.eval.fad import fad

    e = ctx.need("embeddings")
    return Scores({_named(ctx, "fad"): fad(e.ref, e.gen)}, {"sample_rate": e.sample_rate})


@register("fad_inf", "embeddings")
def _fad_inf(ctx: Context) -> Scores:
    from audiodiff.eval.fad import fad_inf

    e = ctx.need("embeddings")
    inf = fad_inf(e.ref, e.gen)
    settings = {"fit": "FAD = a + b / N", "slope": inf["slope"], "points": inf["points"]}
    return Scores({_named(ctx, "fad_inf"): inf["fad_inf"]}, settings | {"sample_rate": e.sample_rate})


@register("kad", "embeddings")
def _kad(ctx: Context) -> Scores:
    from audiodiff.eval.fad import KAD_SCALE, kernel_distance

    e = ctx.need("embeddings")
    kad = kernel_distance(e.ref, e.gen)
    settings = {
        "definition": "kadtk (github.com/YoonjinXD/kadtk): scale * unbiased MMD^2, Gaussian RBF kernel",
        "kernel": "gaussian",
        "bandwidth": kad["bandwidth"],
        "bandwidth_rule": "median pairwise distance of the reference embeddings",
        "scale": KAD_SCALE,
    }
    return Scores({_named(ctx, "kad"): kad["kad"]}, settings | {"sample_rate": e.sample_rate})


@register("ndb", "embeddings")
def _ndb(ctx: Context) -> Scores:
    from audiodiff.eval.metrics import ndb

    e = ctx.need("embeddings")
    result = ndb(e.ref, e.gen, bins=min(50, max(2, len(e.ref) // 10)))
    settings = {"bins": result["bins"], "alpha": 0.05, "kmeans_seed": 0, "sample_rate": e.sample_rate}
    return Scores({_named(ctx, "ndb_k"): result["ndb_k"]}, settings, {"ndb_bins": result["bins"]})


@register("power_spectrum", "radial_spectra", "images")
def _power_spectrum(ctx: Context) -> Scores:
    """Mean |log10 difference| of the radially averaged power spectra (the paper's Fig. 2), and the signed
    error of each band, generated minus reference in dB (power_spectrum_db_low/_mid/_high: radii 1..rmax in
    three contiguous thirds; edges in radii and cycles/pixel under report["power_spectrum_bands"]). Images
    smaller than 6 x 6 have fewer than three rings: the distance alone, without band keys or band edges."""
    from audiodiff.eval.images import spectrum_band_errors, spectrum_distance
    from audiodiff.eval.plots import plot_pair

    s = ctx.need("radial_spectra")
    bands = spectrum_band_errors(s.ref, s.gen, ctx.need("images").ref.shape[-2:])
    radius = np.arange(1, len(s.ref))
    path = ctx.out / "power_spectrum.png"
    edges = [b["radii"][0] - 0.5 for b in bands[1:]]  # between the last ring of a band and the first of the next
    plot_pair(radius, s.ref[1:], s.gen[1:], "spatial frequency (radius)", "power", path, log=True, size=(5, 3),
              marks=edges)  # fmt: skip
    values = {"power_spectrum_log10_l1": spectrum_distance(s.ref, s.gen)}
    values.update({f"power_spectrum_db_{b['band']}": b["error_db"] for b in bands})  # signed: + excess, - deficit
    return Scores(values, extra={"power_spectrum_bands": bands} if bands else {})


@register("pixel_histogram", "images")
def _pixel_histogram(ctx: Context) -> Scores:
    from audiodiff.eval.images import pixel_histogram_distance

    x = ctx.need("images")
    return Scores({"pixel_histogram_tv": pixel_histogram_distance(x.ref, x.gen)})


@register("inception_fid", "images")
def _inception_fid(ctx: Context) -> Scores:
    from audiodiff.eval.images import inception_fid

    x, opts = ctx.need("images"), ctx.options
    return Scores({"inception_fid": inception_fid(x.ref, x.gen, opts.embedder_weights, opts.device)})


@register("classifier", "classifier")
def _classifier(ctx: Context) -> Scores:
    """classifier-FID, IS, mIS, AM of the trained classifier (audio or images) and the predicted-class histogram;
    for a class-conditional generated set (settings.json "labels") also the classifier's accuracy on the
    requested labels ("conditional_accuracy", overall and per class)."""
    from audiodiff.eval.classifier import classifier_scores, conditional_accuracy

    f = ctx.need("classifier")
    values = classifier_scores(f.model, f.ref, f.gen)
    extra = {"gen_class_histogram": values.pop("gen_class_histogram"), "classifier": f.info}
    if ctx.sets.gen_labels is not None:
        values["conditional_accuracy"], extra["conditional_accuracy_per_class"] = conditional_accuracy(
            f.model, f.gen, ctx.sets.gen_labels
        )
    return Scores(values, f.settings, extra)


def _zero_padded(metric: str, a: RefGen, min_samples: int) -> dict:
    """{"<metric>_pairs_zero_padded": count} of the pairs shorter than the metric's STFT takes, which
    `aligned_pair` zero-padded (both clips alike) to score them; {} where none was."""
    count = sum(min(r.shape[-1], g.shape[-1]) < min_samples for r, g in zip(a.ref, a.gen))
    return {f"{metric}_pairs_zero_padded": count} if count else {}


@register("mrstft", "paired_audio")
def _mrstft(ctx: Context) -> Scores:
    from audiodiff.eval.metrics import MRSTFT_MIN_SAMPLES, mrstft_distance

    a = ctx.need("paired_audio")
    value = float(np.mean([mrstft_distance(r, g) for r, g in zip(a.ref, a.gen)]))
    settings = {"sample_rate": a.sample_rate, "resolutions": "auraloss"}
    return Scores({"mrstft": value}, settings, _zero_padded("mrstft", a, MRSTFT_MIN_SAMPLES))


@register("lsd", "paired_audio")
def _lsd(ctx: Context) -> Scores:
    from audiodiff.eval.metrics import log_spectral_distance, stft_min_samples

    a = ctx.need("paired_audio")
    value = float(np.mean([log_spectral_distance(r, g) for r, g in zip(a.ref, a.gen)]))
    settings = {"sample_rate": a.sample_rate, "n_fft": 1024, "hop": 256}
    return Scores({"lsd_db": value}, settings, _zero_padded("lsd", a, stft_min_samples(1024)))


@register("band_lsd", "paired_audio")
def _band_lsd(ctx: Context) -> Scores:
    """`lsd` per band of the matched clips (0-1, 1-4 kHz, 4 kHz to Nyquist): lsd_db_<lo>_<hi>khz, and the
    signed mean level error, generated minus reference, level_err_db_<lo>_<hi>khz (+ excess, - deficit),
    each the mean over pairs. Not a default: a vocoder grid asks for it to tabulate per-band errors."""
    from audiodiff.eval.metrics import band_log_spectral_distance, stft_min_samples

    a = ctx.need("paired_audio")
    per_pair = [band_log_spectral_distance(r, g, a.sample_rate) for r, g in zip(a.ref, a.gen)]
    values = {}
    for i, band in enumerate(per_pair[0]):
        name = "_".join(f"{f / 1000:g}" for f in band["band_hz"]) + "khz"
        for key in ("lsd_db", "level_err_db"):
            values[f"{key}_{name}"] = float(np.mean([bands[i][key] for bands in per_pair]))
    edges = [band["band_hz"][0] for band in per_pair[0]] + ["nyquist"]  # the edges used: 8 kHz drops 4000
    settings = {"sample_rate": a.sample_rate, "n_fft": 1024, "hop": 256, "band_edges_hz": edges}
    return Scores(values, settings, _zero_padded("band_lsd", a, stft_min_samples(1024)))


@register("pesq", "pairs")
def _pesq(ctx: Context) -> Scores:
    """Wide-band PESQ at 16 kHz (P.862.2 is defined there), the mean over pairs in which it finds speech."""
    from audiodiff.audio.io import load_audio
    from audiodiff.eval.metrics import pesq_wb

    values = []
    for ref, gen in ctx.need("pairs"):
        try:
            values.append(pesq_wb(load_audio(ref, 16000), load_audio(gen, 16000)))
        except ValueError as err:  # too short: name the pair
            raise ValueError(f"metric 'pesq': {gen} (reference {ref}): {err}") from None
    valid = [v for v in values if v is not None]
    settings = {"sample_rate": 16000, "mode": "wide-band (P.862.2)"}
    scores = {"pesq_wb": float(np.mean(valid))} if valid else {}
    return Scores(scores, settings, {"pesq_pairs_without_speech": len(values) - len(valid)})


def _octave_bands(s) -> tuple[np.ndarray, list[dict]]:
    """The frequency axis of the sets' mean spectra (`mean_spectra`) and their octave-band levels."""
    from audiodiff.eval.plots import band_levels

    freqs = np.linspace(0, s.sample_rate / 2, len(s.ref))
    return freqs, band_levels(freqs, s.ref, s.gen)


@register("mean_spectrum", "mean_spectra")
def _mean_spectrum(ctx: Context) -> Scores:
    """Mean |dB difference| of the sets' mean spectra; plots them (mean_spectrum.png) and their octave
    bands (band_spectrum.png, levels under report["mean_spectrum_bands"])."""
    from audiodiff.eval.plots import plot_bands, plot_pair

    s = ctx.need("mean_spectra")
    freqs, bands = _octave_bands(s)
    plot_pair(freqs, s.ref, s.gen, "Hz", "mean power (dB)", ctx.out / "mean_spectrum.png")
    plot_bands(bands, ctx.out / "band_spectrum.png")
    settings = {"sample_rate": s.sample_rate, "n_fft": 1024, "hop": 256, "distance": "mean |dB difference|"}
    value = float(np.abs(s.ref - s.gen).mean())
    return Scores({"mean_spectrum_db_l1": value}, settings, {"mean_spectrum_bands": bands})


@register("band_spectrum", "mean_spectra")
def _band_spectrum(ctx: Context) -> Scores:
    """The signed error of each octave band's mean level (the bars of mean_spectrum's band_spectrum.png),
    generated minus reference in dB: mean_spectrum_err_db_<lo>_<hi>hz, + excess, - deficit. Not a default:
    a grid asks for it to tabulate the per-band spectrum error of audio sets (e.g. Griffin-Lim'd mels)."""
    s = ctx.need("mean_spectra")
    values = {
        f"mean_spectrum_err_db_{b['band_hz'][0]:g}_{b['band_hz'][1]:g}hz": b["gen_db"] - b["ref_db"]
        for b in _octave_bands(s)[1]
    }
    return Scores(values, {"sample_rate": s.sample_rate, "n_fft": 1024, "hop": 256, "bands": "octaves up to Nyquist"})


@register("band_psd", "analytic_psd")
def _band_psd(ctx: Context) -> Scores:
    """Per-band dB error of the generated clips' Welch PSD against the reference's analytic PSD
    (`audiodiff.eval.psd`): the max over the bands with 99% of the energy, per third (low/mid/high), the
    RMS over all bands, and each band's signed error (psd_band<i>_err_db, band 0 lowest)."""
    from audiodiff.eval.psd import band_psd_error

    a = ctx.need("analytic_psd")
    result = band_psd_error(a.gen, a.ref)
    values = {f"psd_band_{k}": result[k] for k in ("max_db_99", "low_db", "mid_db", "high_db")}
    errors = [b["error_db"] for b in result["bands"]]
    values["psd_band_rms_db"] = float(np.sqrt(np.mean(np.square(errors))))  # over all bands, 99% or not
    values.update({f"psd_band{i}_err_db": e for i, e in enumerate(errors)})  # signed: + excess, - deficit
    settings = {"sample_rate": a.sample_rate, "bands": 8, "welch": "hann, nperseg 512, 50% overlap", "energy": 0.99}
    return Scores(values, settings, {"psd_bands": result["bands"]})


def applies(name: str, kind: str) -> bool:
    """Whether metric `name` can be computed for sets of `kind`: the kind provides all its needs."""
    return set(METRICS[name].needs) <= set(NEEDS[kind])


def metric_names(kind: str) -> list[str]:
    """The metrics that apply to sets of `kind`, in registry order."""
    return [name for name in METRICS if applies(name, kind)]


def check_metrics(asked: list[str], kind: str) -> None:
    """A one-line ValueError for a metric that is unknown or does not apply to `kind`."""
    allowed = metric_names(kind)
    unknown = sorted(set(asked) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; for {kind} choose from {allowed}")
    inapplicable = sorted(set(asked) - set(allowed))
    if inapplicable:
        raise ValueError(f"metric(s) {inapplicable} do not apply to {kind} sets; choose from {allowed}")
