"""The model card `audiodiff export` writes beside a release: what the model is, what it was trained
on and how, how long, how good, from which commit, and the commands that reproduce it."""

from __future__ import annotations

import datetime
from pathlib import Path

from audiodiff.checkpoint import atomic_write_bytes

CURVE_ROWS = 12  # loss-curve rows on the card (the whole curve is in NAME.loss.json)


def _shape(cfg) -> str:
    if cfg.task == "image":
        return "x".join(str(n) for n in cfg.data.image_shape) + " images"
    text = f"{cfg.data.segment}-sample crops at {cfg.data.sample_rate} Hz, mel preset {cfg.data.mel_preset}"
    if cfg.task == "vocoder" and cfg.data.cond_waveform == "griffin_lim":
        gl = cfg.data.cond_griffin_lim
        text += f"; conditioned on the mels and their Griffin-Lim waveform ({gl.iters} iterations"
        text += f", momentum {gl.momentum:g})"
    return text


def _network(cfg) -> str:
    if cfg.model.kind == "unet":
        u = cfg.model.unet
        return f"UNet, {u.channels} channels x {list(u.channel_mult)}, attention at {list(u.attn_levels) or 'none'}"
    d = cfg.model.diffwave
    embed = ", step embedding on EDM's frequencies" if getattr(d, "embed_freqs", "diffwave") == "edm" else ""
    return f"DiffWave, {d.layers} layers x {d.channels} channels, dilation cycle {d.cycle}{embed}"


def _regularizer(cfg) -> str:
    rc = cfg.regularizer
    if not rc.losses or not rc.lam:
        return "none (baseline)"
    return f"{'+'.join(e.name for e in rc.losses)}, lambda {rc.lam:g} ({rc.weighting}, {rc.normalize})"


def _sampling(cfg) -> str:
    sc = cfg.sample
    steps = f"{len(sc.fast_betas)} steps" if sc.sampler == "fast" else f"{sc.steps} steps"
    text = f"{sc.sampler}, {steps}" + (", x0_hat clamped" if sc.clip_denoised else "")
    classes = cfg.model.unet.num_classes if cfg.model.kind == "unet" else 0
    if classes:  # class-conditional: what a file asks for, and how hard
        text += (
            f"; class-conditional (file k: class seed_k mod {classes}), classifier-free guidance w = {sc.guidance:g}"
        )
    return text


def _prepare_lines(prepare: dict | None, cfg) -> list[str]:
    if prepare is None:
        return [f"# the data dir {cfg.data.train} names no corpus audiodiff prepares; bring that data"]
    root = Path(cfg.data.train).parent.parent
    options = "".join(f" {k}={v}" for k, v in prepare["options"].items())
    lines = [f"audiodiff prepare {prepare['corpus']} --out {root}{options}"]
    if cfg.task == "mel_features":  # trained on dumped log-mels: dump them as training read them
        d = cfg.data
        lines.append(f"audiodiff dump-features {d.train} --preset {d.mel_preset} --sample-rate {d.sample_rate}")
    return ([f"# {prepare['assumed']}"] if prepare.get("assumed") else []) + lines


def _partial_run(step: int, steps: int) -> list[str]:
    """A note when the weights are a checkpoint from the middle of the run (its schedule spans train.steps)."""
    if step >= steps:
        return []
    return [
        f"These weights are the step-{step} checkpoint of a run configured for train.steps={steps}, whose",
        f"learning-rate schedule spans all {steps} steps: the command trains the whole run, and its",
        f"`checkpoints/ckpt-{step:08d}.pt` is this model (`train.keep_ckpts: 0` keeps every checkpoint).",
        "",
    ]


def _slices(minutes: float) -> list[str]:
    """A note when the run was trained in train.max_minutes slices, which the config here leaves out."""
    if not minutes:
        return []
    return [
        f"The run was trained in slices of `train.max_minutes={minutes:g}` (resumed each time, the same weights",
        "as one run); the config here has `train.max_minutes: 0`, so the command trains in one go.",
        "",
    ]


def _wall(seconds: float | None, pieces: int | None = None, note: str | None = None, init_from: str = "") -> str:
    """`seconds`: the checkpoint's train_seconds (`pieces` processes; `note`: how a part of them that predates
    train_seconds was estimated), or with pieces None its mtime minus the start. `init_from`: a fine-tune's source."""
    if seconds is None:
        return "not recorded (no TensorBoard events or config.yaml in the run)"
    if pieces is None:
        text = f"{seconds / 60:.1f} min (first TensorBoard event to the checkpoint's write, on the training machine)"
    else:
        over = f"summed over {pieces} resumed pieces, idle time between them not counted" if pieces > 1 else "one piece"
        text = f"{seconds / 60:.1f} min (training time from the first step, {over}, on the training machine)"
    if note:  # runfiles.resumed_time: "steps up to N: mtime - start = S s, idle time between resumes included"
        text += f"; {note}"
    if init_from:  # train counts a fine-tune from 0: the source's weights came trained
        text += f"; the fine-tuning only (train.init_from={init_from}: its training not counted)"
    return text


def _table(rows: list[tuple[str, str]]) -> list[str]:
    return ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]


RULE = "Convergence (issue 16's rule: the last doubling of steps improves the metric by < 5%):"


def _judged(rule: dict) -> bool:
    """Whether a curve.json verdict judged its metric (learning_curve's converged is None without two
    checkpoints, and the steps and values are then missing)."""
    numbers = ("from_step", "to_step", "before", "after", "improvement")
    return isinstance(rule.get("converged"), bool) and all(isinstance(rule.get(k), (int, float)) for k in numbers)


def _why_not_judged(steps: list | None) -> str:
    """Why the rule has no verdict, from the steps at which the curve has the metric (None: not known)."""
    needs = "the rule needs the step nearest half of the last"
    if steps is None or len(steps) > 1:
        return "the curve.json holds no verdict"
    if not steps:
        return f"the curve has no checkpoint with a value; {needs}"
    return f"the curve has one checkpoint (step {steps[0]}); {needs}"


def _convergence_lines(metrics: dict) -> list[str]:
    """The rule's table for the judged metrics; a sentence, never a "no", for those the curve could not judge."""
    rules = [r for r in metrics["convergence"] if isinstance(r, dict) and "metric" in r]
    if not rules:
        return []
    judged = [r for r in rules if _judged(r)]
    reasons: dict[str, list[str]] = {}
    for r in rules:
        if not _judged(r):
            reasons.setdefault(_why_not_judged(metrics.get("checkpoints", {}).get(r["metric"])), []).append(r["metric"])
    lines = ["", RULE, ""]
    if judged:
        lines += ["| metric | steps | before | after | improvement | converged |", "|---|---|---:|---:|---:|---|"]
        lines += [
            f"| {r['metric']} | {r['from_step']} -> {r['to_step']} | {r['before']:.4g} | {r['after']:.4g} "
            f"| {100 * r['improvement']:+.1f}% | {'yes' if r['converged'] else 'no'} |"
            for r in judged
        ]
    alone = not judged and len(reasons) == 1  # every metric, for one reason: no names needed
    for reason, names in reasons.items():
        lines += [*([""] if lines[-1] else []), f"Not judged{'' if alone else ' for ' + ', '.join(names)}: {reason}."]
    return lines


def _metric_lines(metrics: dict | None) -> list[str]:
    if not metrics:
        return ["Not measured for this card (`audiodiff export --metrics metrics.json|curve.json`)."]
    at = f" at step {metrics['step']}" if metrics["step"] is not None else ""
    lines = [f"From `{metrics['source']}`{at}:", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" for k, v in metrics["values"].items()]
    return lines + _convergence_lines(metrics)


def _curve_lines(curve: dict, name: str) -> list[str]:
    steps = curve["step"]
    if not steps or "denoise" not in curve:
        return ["No loss lines in the run's log.txt."]
    picks = sorted({round(i * (len(steps) - 1) / (CURVE_ROWS - 1)) for i in range(CURVE_ROWS)})
    lines = [f"Denoising loss (`{name}.loss.json` holds all {len(steps)} points):", "", "| step | denoise | loss |"]
    lines.append("|---|---|---|")
    return lines + [f"| {steps[i]} | {curve['denoise'][i]:.5g} | {curve.get('loss', curve['denoise'])[i]:.5g} |"
                    for i in picks]  # fmt: skip


def _resampled(changes: dict) -> str:
    """What `export --sample` changed from the run's sampling settings (empty when nothing)."""
    if not changes:
        return ""
    return " (set at export; the run's config: " + ", ".join(f"{k}={old}" for k, (old, _) in changes.items()) + ")"


def _diffusion(d) -> str:
    """The card's diffusion row: EDM's own parameters (it has no prediction target or beta schedule); a DDPM's
    data-dependent prior (diffusion.prior) when it has one."""
    if d.kind == "edm":
        return (
            f"edm (Karras preconditioning, weighted L2 on x0), sigma_data {d.sigma_data:g}, "
            f"ln sigma ~ N({d.p_mean:g}, {d.p_std:g}^2) in training, sigma in [{d.sigma_min:g}, {d.sigma_max:g}]"
        )
    row = f"{d.kind}, {d.prediction} prediction, schedule {d.schedule}"
    if d.prior.kind != "none":  # training and every sampler draw noise coloured by it: part of what the model is
        p = d.prior
        top = f" (its {p.max_quantile:g} quantile)" if p.max_quantile < 1 else ""
        if p.kind == "spec_envelope":
            return row + (
                f"; SpecGrad {p.kind} prior (lifter order {p.lifter_order}, floor {p.floor:g}, training envelope "
                f"RMS {p.energy_min:g} .. {p.energy_max:g}{top})"
            )
        row += (
            f"; PriorGrad {p.kind} prior (std_min {p.std_min:g}, training frame energy ({p.energy}) "
            f"{p.energy_min:g} .. {p.energy_max:g}{top}, align {p.align or 'hold'})"
        )
    return row


def card_text(facts: dict, size: int) -> str:
    """The card's Markdown from the facts `audiodiff.release.export` gathered; `size` is the file's bytes."""
    name, meta, cfg = facts["name"], facts["meta"], facts["cfg"]
    tc, d = cfg.train, cfg.diffusion
    ema = f"EMA half-life {tc.ema_halflife_steps:g} steps" if tc.ema_halflife_steps > 0 else f"EMA {tc.ema_decay}"
    commit = f"{meta['commit']} ({meta['commit_source']})"
    if len(facts["commits"]) > 1:
        commit += f"; the run's starts and resumes record {', '.join(facts['commits'])}"
    rows = [
        ("task", f"{cfg.task}: {_shape(cfg)}"),
        ("network", f"{_network(cfg)}; {int(meta['parameters']):,} parameters"),
        ("diffusion", _diffusion(d)),
        ("regularizer", _regularizer(cfg)),
        ("training", f"{meta['step']} steps, batch {tc.batch_size}, lr {tc.lr:g}, seed {tc.seed}, {ema}"),
        ("sampling", _sampling(cfg) + _resampled(facts.get("resampled") or {})),
        ("weights", f"EMA, {meta['dtype']} ({size / 1e6:.2f} MB; loaded as float32)"),
        ("wall time", _wall(facts["wall_s"], facts.get("train_pieces"), facts.get("train_seconds_note"), tc.init_from)),
        ("machine", "; ".join(facts["machines"]) or "not recorded (trained before log.txt recorded it)"),
        ("commit", commit),
        ("torch", meta["torch"]),
        ("exported", f"{datetime.date.today()} at commit {facts['exporting_commit']}"),
    ]
    article = "An" if cfg.task[0] in "aeiou" else "A"
    resumes = [f"- {line}" for line in facts["resumes"]] or ["- none: trained in one go"]
    lines = [
        f"# {name}",
        "",
        f"{article} {cfg.task} diffusion model trained with audiodiff. Generate from it:",
        "",
        "```",
        f"audiodiff generate --ckpt {name} --seeds 0-15 --out gen/{name}    # shipped in audiodiff/pretrained/",
        f"audiodiff generate --ckpt path/to/{name}.safetensors --out gen/{name}",
        "```",
        "",
        *_table(rows),
        "",
        "## Data",
        "",
        f"`data.train={cfg.data.train}`" + (f", `data.valid={cfg.data.valid}`" if cfg.data.valid else ""),
        "",
        "## Metrics",
        "",
        *_metric_lines(facts["metrics"]),
        "",
        "## Reproduce",
        "",
        f"`{name}.yaml` beside this card is the run's resolved config (also in the weights' metadata):",
        "",
        "```",
        *_prepare_lines(facts["prepare"], cfg),
        f"audiodiff train {name}.yaml name={name} exp_dir=exp data.train={cfg.data.train}",
        "```",
        "",
        *_partial_run(int(meta["step"]), cfg.train.steps),
        *_slices(facts.get("sliced", 0.0)),
        "Resumes during training (from log.txt):",
        "",
        *resumes,
        "",
        "## Loss curve",
        "",
        *_curve_lines(facts["curve"], name),
        "",
    ]
    return "\n".join(lines)


def write_card(path: Path, facts: dict, size: int) -> None:
    """Write the card (atomically)."""
    atomic_write_bytes(path, card_text(facts, size).encode())
