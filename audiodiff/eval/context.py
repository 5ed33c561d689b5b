"""What an evaluation compared, for the report: the generated set's settings.json, the training
config beside its checkpoint, the real-data floor (a real-vs-real evaluation's metrics), and
whether a lower or a higher value of each metric is better.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import yaml

from audiodiff.checkpoint import read_json
from audiodiff.eval.registry import current_names

# Metrics (report keys, prefix before any "_<embedder>") where higher is better; signed errors, best at 0
# (band_psd's, power_spectrum's, band_spectrum's and band_lsd's level_err_db per-band dB errors: + excess, - deficit);
# all others: lower.
HIGHER_IS_BETTER = (
    "inception_score",
    "modified_inception_score",
    "inception_score_ref",
    "pesq_wb",
    "conditional_accuracy",
)
SIGNED = re.compile(
    r"psd_band\d+_err_db|power_spectrum_db_(low|mid|high)|mean_spectrum_err_db_[\d.]+_[\d.]+hz|level_err_db_[\d.]+_[\d.]+khz"
)
BETTER = {"higher": "higher is better", "lower": "lower is better", "zero": "closest to 0 is better"}


def direction(metric: str) -> str:
    """ "higher", "lower" or "zero" (a signed error): which way `metric` (a report key such as fad_ge2e) improves."""
    if metric in HIGHER_IS_BETTER:
        return "higher"
    return "zero" if SIGNED.fullmatch(metric) else "lower"


def best_of(metric: str, values: list[float]) -> float:
    """The best of `values` of `metric`: the largest, the smallest or the one closest to 0 (`direction`)."""
    rank = {"higher": lambda v: -v, "lower": lambda v: v, "zero": abs}[direction(metric)]
    return min(values, key=rank)


def _training_config(checkpoint: str | None, gen: Path) -> dict:
    """The run's config.yaml: beside the checkpoint, in the run dir above checkpoints/, or (for a
    checkpoint path relative to where generate ran) in the run dir holding the generated set."""
    if not checkpoint:
        return {}
    released = _release_config(checkpoint)
    if released is not None:
        return released
    path = Path(checkpoint)
    for folder in (path, path.parent, path.parent.parent, gen.resolve().parent):
        if (folder / "config.yaml").is_file():
            loaded = yaml.safe_load((folder / "config.yaml").read_text())
            return loaded if isinstance(loaded, dict) else {}
    return {}


def _release_config(checkpoint: str) -> dict | None:
    """A released model's config (with its name and commit) from its metadata; None for other checkpoints."""
    from audiodiff.release import names_release, read_release, resolve_release

    if not names_release(checkpoint):
        return None
    try:
        meta, _ = read_release(resolve_release(checkpoint), tensors=False)
        config = json.loads(meta["config"])
    except (FileNotFoundError, ValueError):  # not found from here (a relative path): the context goes without
        return None
    if not isinstance(config, dict):  # metadata edited since generate read it: no context rather than a crash
        return None
    return config | {"name": meta.get("name"), "commit": meta.get("commit")}


def _regularizer(cfg: dict) -> str:
    reg = cfg.get("regularizer") or {}
    names = [e.get("name", "?") for e in reg.get("losses") or []]
    if not names or not reg.get("lam"):
        return "none"
    return f"{'+'.join(names)}, lambda {reg['lam']:g} ({reg.get('weighting', 'unweighted')})"


def _sampler(settings: dict) -> str:
    """ "ddim, 50 steps, eta=0.5": the sampler, its steps and the settings it read (EDM churn, rho, ...); a
    shallow start (generate --init, above level 0) adds where it began, "from griffin-lim at level 5 of 6
    (sigma 0.01)", so the set is not taken for the sampler's output from noise."""
    read = {k: v for k, v in (settings.get("sampler_settings") or {}).items() if k not in ("steps", "fast_betas")}
    parts = [settings["sampler"], f"{settings.get('steps')} steps", *(f"{k}={v}" for k, v in read.items())]
    if (init := settings.get("init")) and init.get("level"):
        parts.append(f"from {init['kind']} at level {init['level']} of {init['levels']} (sigma {init['sigma']:.3g})")
    return ", ".join(parts)


def run_context(gen: str | Path) -> dict:
    """What produced the generated set `gen`: checkpoint, step, task, regularizer, sampler, commit.

    Read from `gen/settings.json` (written by `audiodiff generate`) and the training config found
    beside its checkpoint; entries that are not recorded are left out.
    """
    path = Path(gen) / "settings.json"
    if not path.is_file():
        return {}
    settings = json.loads(path.read_text())
    cfg = _training_config(settings.get("checkpoint"), Path(gen))
    diffusion = cfg.get("diffusion") or {}
    context = {
        "run": cfg.get("name") or settings.get("run"),  # a set made without a model names itself
        "checkpoint": settings.get("checkpoint"),
        "step": settings.get("step"),
        "task": cfg.get("task"),
        "diffusion": f"{diffusion['kind']} ({diffusion.get('prediction', '')})" if "kind" in diffusion else None,
        "regularizer": _regularizer(cfg) if cfg else None,
        "sampler": _sampler(settings) if "sampler" in settings else None,
        "weights": settings.get("weights"),
        "sample_rate": settings.get("sample_rate"),
        "commit": settings.get("commit") or cfg.get("commit"),
    }
    return {k: v for k, v in context.items() if v is not None}


def _load_report(file: Path) -> dict:
    """The report in an evaluate metrics.json; ValueError (one line naming `file`) when it is not one."""
    try:
        report = read_json(file)
    except ValueError as err:
        raise ValueError(f"{err}; an interrupted write?") from None
    if not isinstance(report, dict) or not isinstance(report.get("metrics"), dict):
        raise ValueError(f"{file}: not an evaluate metrics.json (no 'metrics' table)")
    return report


def finished_evaluation(folder: str | Path, log: Callable[[str], None] = print) -> dict | None:
    """The report in `folder`/metrics.json, or None when evaluate has not finished there: no file, or
    one that is not a whole report (a truncated or foreign file; said through `log`, to be evaluated again)."""
    file = Path(folder) / "metrics.json"
    if not file.is_file():
        return None
    try:
        return _load_report(file)
    except ValueError as err:
        log(f"{err}; treated as missing")
        return None


def read_floor(path: str | Path) -> dict:
    """The real-data floor: the metrics of a real-vs-real evaluation (its folder or its metrics.json)."""
    path = Path(path)
    file = path / "metrics.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"--floor {path}: no metrics.json (pass the output folder of a real-vs-real evaluate)")
    try:
        report = _load_report(file)
    except ValueError as err:
        raise ValueError(f"--floor {err}") from None
    metrics = current_names(report["metrics"], (report.get("embedder") or {}).get("name"))
    return {"source": str(file), "ref": report.get("ref"), "gen": report.get("gen"), "metrics": metrics}
