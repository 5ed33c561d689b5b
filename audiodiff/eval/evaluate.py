"""`audiodiff evaluate`: generated audio against a reference set; JSON, markdown and plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from audiodiff.audio.io import load_audio, native_rate
from audiodiff.data.datasets import list_audio
from audiodiff.data.validate import usable_audio
from audiodiff.eval.embeddings import build_embedder, embed_files
from audiodiff.eval.fad import KAD_SCALE, fad, fad_inf, kernel_distance
from audiodiff.eval.metrics import log_spectral_distance, mrstft_distance, ndb, pesq_wb
from audiodiff.eval.pretrained import cache_dir
from audiodiff.eval.report import write_report
from audiodiff.runfiles import writable_dir

METRICS = ("fad", "fad_inf", "kad", "ndb", "mean_spectrum", "mrstft", "lsd", "pesq", "classifier", "inception_fid")
EMBEDDING_METRICS = {"fad", "fad_inf", "kad", "ndb"}
PAIRED = {"mrstft", "lsd", "pesq"}  # vocoding: generated and reference files matched by name
# Shortest usable clip: 128 ms holds the longest analysis frames at any analysis rate from 8 kHz
# (MR-STFT's 2048-point frame needs > 1024 samples, the mean spectrum's 1024-point one > 512).
# Silent clips are kept: a model that generates silence is scored for it.
MIN_SECONDS = 2048 / 16000


def default_cache() -> Path:
    return cache_dir("embeddings")


def mean_log_spectrum(paths: list[str], sample_rate: int, n_fft: int = 1024) -> np.ndarray:
    """Average power spectrum of a set of files, in dB. -> (n_fft // 2 + 1,)"""
    window = torch.hann_window(n_fft)
    total, frames = torch.zeros(n_fft // 2 + 1, dtype=torch.float64), 0
    for p in paths:
        wav = load_audio(p, sample_rate)
        spec = torch.stft(wav, n_fft, n_fft // 4, window=window, return_complex=True).abs().square()
        total += spec.sum(1).double()
        frames += spec.shape[1]
    return (10 * torch.log10(total / max(frames, 1) + 1e-12)).numpy()


def common_rate(paths: list[str]) -> int:
    """The lowest native sample rate among `paths`: the rate at which all of them carry content."""
    return min(native_rate(p) for p in paths)


def _paired_metrics(report: dict, ref_paths: list[str], gen_paths: list[str], metrics) -> None:
    """MR-STFT and LSD at the pairs' common native rate, PESQ at 16 kHz; into report["metrics"/"settings"].

    Generated and reference files are matched by name. Only PESQ resamples to 16 kHz (P.862.2 is
    defined there): at 22.05 kHz the 8-11 kHz band, where the spectral regularizers act, would
    otherwise drop out of MR-STFT and LSD.
    """
    ref_by_name = {Path(p).stem: p for p in ref_paths}
    pairs = [(ref_by_name[Path(p).stem], p) for p in gen_paths if Path(p).stem in ref_by_name]
    if not pairs:
        raise ValueError("mrstft/lsd/pesq compare generated and reference files of the same name; none match")
    report["n_pairs"] = len(pairs)
    settings, scores = report["settings"], report["metrics"]
    if {"mrstft", "lsd"} & set(metrics):
        sr = common_rate([p for pair in pairs for p in pair])
        loaded = [(load_audio(r, sr), load_audio(g, sr)) for r, g in pairs]
        if "mrstft" in metrics:
            scores["mrstft"] = float(np.mean([mrstft_distance(r, g) for r, g in loaded]))
            settings["mrstft"] = {"sample_rate": sr, "resolutions": "auraloss"}
        if "lsd" in metrics:
            scores["lsd_db"] = float(np.mean([log_spectral_distance(r, g) for r, g in loaded]))
            settings["lsd"] = {"sample_rate": sr, "n_fft": 1024, "hop": 256}
    if "pesq" in metrics:
        values = [pesq_wb(load_audio(r, 16000), load_audio(g, 16000)) for r, g in pairs]
        valid = [v for v in values if v is not None]
        report["pesq_pairs_without_speech"] = len(values) - len(valid)
        settings["pesq"] = {"sample_rate": 16000, "mode": "wide-band (P.862.2)"}
        if valid:
            scores["pesq_wb"] = float(np.mean(valid))


def evaluate(
    ref: str | Path,
    gen: str | Path,
    out: str | Path,
    metrics=METRICS,
    embedder: str = "ge2e",
    cache_dir: str | Path | None = None,
    device: str = "cpu",
    progress: bool = False,
    classifier: str | Path | None = None,
    embedder_weights: str | Path | None = None,
    on_bad_audio: str = "error",
) -> dict:
    """Compare the audio under `gen` with `ref` (data dirs or folders); write metrics.json/.md and plots.

    With `classifier` (a directory from `audiodiff train-classifier`), the "classifier" metrics
    (classifier-FID, IS, mIS, AM) are added; `metrics` may name "classifier" only then.

    Every file is audited first (missing, unreadable, empty, NaN/inf, shorter than MIN_SECONDS):
    `on_bad_audio` "error" stops listing all bad files by id, "skip" scores the others and lists
    the left-out files under "skipped_audio" in the report.
    """
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {list(METRICS)}")
    if "classifier" in metrics and not classifier:
        raise ValueError("metric 'classifier' needs --classifier DIR (from `audiodiff train-classifier`)")
    if classifier and "classifier" not in metrics:
        metrics = (*metrics, "classifier")
    out = writable_dir(out, "evaluate: output folder")
    if (Path(ref) / "images.npy").is_file():  # the image path: spectra and pixel statistics
        from audiodiff.eval.images import evaluate_images

        report = evaluate_images(
            ref,
            gen,
            out,
            classifier=classifier,
            device=device,
            inception="inception_fid" in metrics,
            inception_weights=embedder_weights,
        )
        _write_metrics(out, report, f"Reference: {ref}; generated: {gen}")
        return report
    hint = "pass --on-bad-audio skip to evaluate the others"
    (ref_ok, ref_bad), (gen_ok, gen_bad) = (
        usable_audio(list_audio(s), s, on_bad_audio, hint, silence_db=None, min_seconds=MIN_SECONDS) for s in (ref, gen)
    )
    ref_paths, gen_paths = list(ref_ok.values()), list(gen_ok.values())
    report: dict = {"ref": str(ref), "gen": str(gen), "n_ref": len(ref_paths), "n_gen": len(gen_paths), "metrics": {}}
    if ref_bad or gen_bad:
        report["skipped_audio"] = {"ref": ref_bad, "gen": gen_bad}
    settings: dict = {"metrics": list(metrics)}
    report["settings"] = settings
    if EMBEDDING_METRICS & set(metrics):
        model = build_embedder(embedder, device, embedder_weights)
        cache = cache_dir or default_cache()
        e_ref, info_ref = embed_files(ref_paths, model, cache, progress=progress)
        e_gen, info_gen = embed_files(gen_paths, model, cache, progress=progress)
        report["embedder"] = {
            "name": model.name,
            "version": model.version,
            "sample_rate": model.sample_rate,
            "dim": model.dim,
            "cache": str(cache),
        }
        report["durations_s"] = {
            k: {
                "mean": float(np.mean(v["durations"])),
                "min": float(np.min(v["durations"])),
                "max": float(np.max(v["durations"])),
            }
            for k, v in (("ref", info_ref), ("gen", info_gen))
        }
        report["cache"] = {
            "hits": info_ref["cache_hits"] + info_gen["cache_hits"],
            "computed": info_ref["computed"] + info_gen["computed"],
            "recomputed": info_ref["recomputed"] + info_gen["recomputed"],  # bad entries, each with why
        }
        if "fad" in metrics:
            report["metrics"]["fad"] = fad(e_ref, e_gen)
        if "fad_inf" in metrics:
            inf = fad_inf(e_ref, e_gen)
            report["metrics"]["fad_inf"] = inf["fad_inf"]
            settings["fad_inf"] = {"fit": "FAD = a + b / N", "slope": inf["slope"], "points": inf["points"]}
        if "kad" in metrics:
            kad = kernel_distance(e_ref, e_gen)
            report["metrics"]["kad"] = kad["kad"]
            settings["kad"] = {
                "definition": "kadtk (github.com/YoonjinXD/kadtk): scale * unbiased MMD^2, Gaussian RBF kernel",
                "kernel": "gaussian",
                "bandwidth": kad["bandwidth"],
                "bandwidth_rule": "median pairwise distance of the reference embeddings",
                "scale": KAD_SCALE,
            }
        if "ndb" in metrics:
            result = ndb(e_ref, e_gen, bins=min(50, max(2, len(e_ref) // 10)))
            report["metrics"]["ndb_k"] = result["ndb_k"]
            report["ndb_bins"] = result["bins"]
            settings["ndb"] = {"bins": result["bins"], "alpha": 0.05, "kmeans_seed": 0}
        for name in EMBEDDING_METRICS & set(metrics):  # the embedder resamples every clip to its rate
            settings.setdefault(name, {})["sample_rate"] = model.sample_rate
    if "classifier" in metrics:
        from audiodiff.eval.classifier import ClassifierEmbedder, classifier_scores

        clf = ClassifierEmbedder(classifier, device)
        cache = cache_dir or default_cache()
        f_ref, _ = embed_files(ref_paths, clf, cache, progress=progress)
        f_gen, _ = embed_files(gen_paths, clf, cache, progress=progress)
        scores = classifier_scores(clf.model, f_ref, f_gen)
        report["gen_class_histogram"] = scores.pop("gen_class_histogram")
        report["metrics"].update(scores)
        report["classifier"] = {
            "path": str(classifier),
            "labels": clf.model.config.labels,
            "test_accuracy": clf.meta.get("test_accuracy"),
            "weights_sha1": clf.meta["weights_sha1"],
        }
        settings["classifier"] = {"sample_rate": clf.sample_rate}
    if PAIRED & set(metrics):
        _paired_metrics(report, ref_paths, gen_paths, metrics)
    if "mean_spectrum" in metrics:
        # At the lower native rate of the two sets: above a set's Nyquist there is only resampling
        # residue, whose dB level would dominate the distance.
        sr = common_rate(ref_paths + gen_paths)
        settings["mean_spectrum"] = {"sample_rate": sr, "n_fft": 1024, "hop": 256, "distance": "mean |dB difference|"}
        spec_ref, spec_gen = mean_log_spectrum(ref_paths, sr), mean_log_spectrum(gen_paths, sr)
        report["metrics"]["mean_spectrum_db_l1"] = float(np.abs(spec_ref - spec_gen).mean())
        _plot_spectra(spec_ref, spec_gen, sr, out / "mean_spectrum.png")
    _write_metrics(
        out,
        report,
        f"Reference: {ref} ({len(ref_paths)} files); generated: {gen} ({len(gen_paths)} files); embedder: {embedder}",
    )
    write_report(out / "report.html", report, ref_paths, gen_paths)
    return report


def _write_metrics(out: Path, report: dict, header: str) -> None:
    """metrics.json (the whole report) and metrics.md (a header line and the metrics table)."""
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    rows = "".join(f"| {k} | {v:.4g} |\n" for k, v in report["metrics"].items())
    (out / "metrics.md").write_text(f"{header}\n\n| metric | value |\n|---|---:|\n{rows}")


def _plot_spectra(ref: np.ndarray, gen: np.ndarray, sample_rate: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    freqs = np.linspace(0, sample_rate / 2, len(ref))
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(freqs, ref, label="reference")
    ax.plot(freqs, gen, label="generated")
    ax.set_xlabel("Hz")
    ax.set_ylabel("mean power (dB)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
