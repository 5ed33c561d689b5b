"""Released models: a run's EMA weights in one safetensors file, with the resolved config and what
generation needs in its metadata, and a model card beside it. Shipped ones live in audiodiff/pretrained/.

    audiodiff export exp/cb16 --out release/checkerboard16 --half --metrics exp/cb16/curve/curve.json
    audiodiff generate --ckpt checkerboard16 --out gen   # a shipped name: audiodiff/pretrained/checkerboard16.*
    audiodiff generate --ckpt release/checkerboard16.safetensors --out gen

`export` writes NAME.safetensors (weights and metadata), NAME.md (the card: data, config,
steps, wall time, metrics, commit, the commands that reproduce it, the loss curve), NAME.yaml
(the resolved config the reproduce command trains from) and NAME.loss.json (the denoising loss
every train.log_every steps, which audiodiff.reproduce re-trains against). No pickle anywhere:
safetensors holds tensors and string metadata only.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor

FORMAT = "audiodiff-release/1"
PRETRAINED = Path(__file__).parent / "pretrained"
SUFFIX = ".safetensors"
DTYPES = {"float32": torch.float32, "float16": torch.float16}
# Metadata every release carries; generation reads the first five, the card the rest.
REQUIRED = ("format", "config", "architecture", "step", "dtype")
# train's "step N denoise=.. loss=.. lr=.." lines; a regularized run also logs "spec/<label>=.." terms
# (e.g. spec/amp, spec/bior1.3), whose keys are not \w+
LOG_LINE = re.compile(r"step (\d+) ([^\s=]+=\S+(?: [^\s=]+=\S+)*)$")


def shipped_models() -> dict[str, Path]:
    """{name: file} of the models shipped inside the package (audiodiff/pretrained/NAME.safetensors)."""
    return {path.stem: path for path in sorted(PRETRAINED.glob(f"*{SUFFIX}"))}


def names_release(ckpt: str | Path) -> bool:
    """Whether `--ckpt` names a released model: a .safetensors file, or a bare name (no folder,
    not an existing path) that can only mean a shipped model."""
    text = str(ckpt)
    if text.endswith(SUFFIX):
        return True
    return not Path(text).exists() and "/" not in text and "\\" not in text and not text.endswith(".pt")


def resolve_release(ckpt: str | Path) -> Path:
    """The safetensors file `ckpt` names: itself, or the shipped model of that name."""
    text = str(ckpt)
    if text.endswith(SUFFIX):
        if not Path(text).is_file():
            raise FileNotFoundError(f"model file not found: {text}")
        return Path(text)
    shipped = shipped_models()
    if text in shipped:
        return shipped[text]
    listed = ", ".join(shipped) if shipped else f"none yet ({PRETRAINED} is empty)"
    raise FileNotFoundError(
        f"--ckpt {text}: no such checkpoint, run directory or shipped model; shipped models: {listed}"
    )


def read_release(path: str | Path, tensors: bool = True) -> tuple[dict[str, str], dict[str, Tensor]]:
    """(validated metadata, tensors as stored; {} unless `tensors`) of a release file; a one-line
    ValueError naming it otherwise."""
    path = Path(path)
    try:
        with safe_open(str(path), "pt", device="cpu") as f:
            meta = f.metadata() or {}
            stored = {key: f.get_tensor(key) for key in f.keys()} if tensors else {}  # noqa: SIM118
    except SafetensorError as err:
        raise ValueError(f"{path}: not a readable safetensors file ({str(err).splitlines()[0]})") from None
    check_metadata(meta, path)
    return meta, stored


def check_metadata(meta: dict[str, str], path: str | Path) -> None:
    """Raise a one-line ValueError naming `path` and the key when `meta` is not a release's metadata."""
    for key in REQUIRED:
        if key not in meta:
            raise ValueError(f"{path}: metadata has no {key!r} (audiodiff export writes {list(REQUIRED)})")
    if meta["format"] != FORMAT:
        raise ValueError(f"{path}: metadata format={meta['format']!r}, this audiodiff reads {FORMAT!r}")
    if meta["dtype"] not in DTYPES:
        raise ValueError(f"{path}: metadata dtype={meta['dtype']!r}; allowed: {list(DTYPES)}")
    if not re.fullmatch(r"[0-9]+", meta["step"]):  # not isdigit(): "²" is a digit that int() refuses
        raise ValueError(f"{path}: metadata step={meta['step']!r} is not a whole number")


def release_config(meta: dict[str, str], path: str | Path):
    """The ExperimentConfig in the metadata, validated by the config loader (ConfigError names `path`)."""
    from audiodiff.config import from_yaml

    return from_yaml(meta["config"], f"{path}: metadata 'config'")  # JSON is YAML


def architecture(cfg, net: torch.nn.Module) -> str:
    """'unet:UNet': the config's model.kind and the network class it builds."""
    return f"{cfg.model.kind}:{type(net).__name__}"


def load_release(ckpt: str | Path, device: str = "cpu", use_ema: bool = True):
    """(config, network in eval mode with the release's weights in float32, step) from a release.

    Raises:
        FileNotFoundError: no such file or shipped name (the message lists the shipped ones).
        ValueError: unreadable file, missing/bad metadata, a config the schema refuses, an
            architecture other than the config builds, weights that do not fit, or `use_ema`
            False (a release holds the EMA weights only); one line naming the file.
    """
    from audiodiff.builders import build_network
    from audiodiff.checkpoint import load_weights

    path = resolve_release(ckpt)
    if not use_ema:
        raise ValueError(f"--raw: {path} holds the EMA weights only (an export keeps no raw weights)")
    meta, tensors = read_release(path)
    cfg = release_config(meta, path)
    net = build_network(cfg)
    if meta["architecture"] != architecture(cfg, net):
        raise ValueError(
            f"{path}: metadata architecture={meta['architecture']!r} but its config builds {architecture(cfg, net)!r}"
        )
    weights = {k: v.float() if v.dtype == torch.float16 else v for k, v in tensors.items()}  # --half: upcast
    load_weights(net, weights, path)
    return cfg, net.to(device).eval(), int(meta["step"])


# ---- export


def loss_curve(log: Path, last_step: int) -> dict[str, list]:
    """The logged loss terms up to `last_step` from a run's log.txt: {"step": [...], "loss": [...], ...}.

    A step logged twice (a resume from an earlier checkpoint repeats the steps after it) keeps
    its last value, the one the exported weights descend from.
    """
    rows: dict[int, dict[str, float]] = {}
    for line in log.read_text().splitlines() if log.is_file() else []:
        match = LOG_LINE.fullmatch(line.strip())
        if match and int(match.group(1)) <= last_step:
            pairs = (item.split("=", 1) for item in match.group(2).split())
            rows[int(match.group(1))] = {k: float(v) for k, v in pairs if k in ("loss", "denoise", "spectral")}
    steps = sorted(rows)
    curve: dict[str, list] = {"step": steps}
    for key in ("loss", "denoise", "spectral"):
        if steps and all(key in rows[s] for s in steps):
            curve[key] = [rows[s][key] for s in steps]
    return curve


def recorded(log: Path, key: str) -> list[str]:
    """The distinct values of a run's log.txt lines '<key> <value>' in order: train writes 'commit <hash>'
    and 'machine <cpu, threads, torch>' at each start and resume ('commit unknown ...' outside git: left out)."""
    found = re.findall(rf"^{key} (.+)$", log.read_text(), re.M) if log.is_file() else []
    return [v.strip() for v in dict.fromkeys(found) if not v.startswith("unknown")]


def parse_prepare(text: str) -> dict:
    """'checkerboard size=16 sides=2,4,8' -> {"corpus": ..., "options": {...}}, checked against the corpus."""
    from audiodiff.data.corpora import CORPORA, corpus_function

    corpus, *items = text.split()
    if corpus not in CORPORA:
        raise ValueError(f"--prepare {text!r}: unknown corpus {corpus!r}; choose one of {list(CORPORA)}")
    import inspect

    allowed = set(inspect.signature(corpus_function(corpus)).parameters) - {"out"}
    options = {}
    for item in items:
        key, _, value = item.partition("=")
        if not value or key not in allowed:
            raise ValueError(f"--prepare {text!r}: {item!r} is not key=value with a key of {sorted(allowed)}")
        options[key] = value
    return {"corpus": corpus, "options": options}


def guess_prepare(data_train: str) -> dict | None:
    """The corpus a data dir came from (the `<corpus>.json` that prepare writes two folders up), options unknown."""
    root = Path(data_train).parent.parent
    for summary in sorted(root.glob("*.json")) if root.is_dir() else []:
        try:
            corpus = json.loads(summary.read_text()).get("corpus")
        except (json.JSONDecodeError, AttributeError):
            continue
        if corpus == summary.stem:
            return {"corpus": corpus, "options": {}, "assumed": "prepare options not recorded: its defaults assumed"}
    return None


def _tensors(weights: dict[str, Tensor], net: torch.nn.Module, half: bool) -> dict[str, Tensor]:
    """What the file stores: every EMA tensor, parameters in float16 when `half` (buffers stay as they are)."""
    params = {name for name, _ in net.named_parameters()}
    out = {}
    for name, value in weights.items():
        value = value.detach().cpu()
        if half and name in params and value.dtype == torch.float32:
            value = value.half()
        out[name] = value.contiguous().clone()
    return out


def export(
    source: str | Path,
    out: str | Path,
    half: bool = False,
    metrics: str | Path | None = None,
    prepare: str | None = None,
    guidance: float | None = None,
    sample: tuple[str, ...] | list[str] = (),
) -> list[Path]:
    """Write the release of a run (its latest checkpoint) or checkpoint file `source` as `out`.safetensors,
    `out`.md, `out`.yaml and `out`.loss.json; returns their paths.

    Args:
        source: a run directory, checkpoint file or `latest` pointer (as `generate --ckpt`).
        out: DIR/NAME (a trailing .safetensors is dropped); DIR is created.
        half: store the parameters in float16 (half the size; loading upcasts to float32).
        metrics: an evaluate metrics.json or a learning_curve curve.json to put on the card (its numbers
            for the exported step; another step's are refused).
        prepare: the corpus and its prepare options ('checkerboard size=16 sides=2,4,8'); default:
            the corpus named by the data dir's summary, with its defaults (said on the card).
        guidance: the release's sample.guidance (classifier-free guidance of a class-conditional
            model with a null label; default: the run's), what `generate --ckpt NAME` uses unless told.
        sample: `sample.KEY=VALUE` settings the release generates with instead of the run's
            (e.g. sample.sampler=ddim): sampling does not touch training, so the weights and the
            card's recipe stay the run's; the card names what changed. Other keys are refused.
    """
    from safetensors.torch import save

    from audiodiff.builders import build_network
    from audiodiff.card import write_card
    from audiodiff.checkpoint import atomic_write_bytes, load_checkpoint, load_weights, write_json
    from audiodiff.config import from_yaml, to_yaml
    from audiodiff.eval.results import source_commit
    from audiodiff.guidance import guidance_problem
    from audiodiff.runfiles import run_start, wall_seconds

    state = load_checkpoint(source)
    ckpt = Path(state["path"])
    cfg = from_yaml(state["config"], f"{ckpt}: stored config")
    if "ema" not in state:
        raise ValueError(f"{ckpt}: no EMA weights to export")
    # a run trained in wall-clock slices: the recipe is the whole run (the slices give the same weights)
    sliced, cfg.train.max_minutes = cfg.train.max_minutes, 0.0
    if guidance is not None:  # a shorthand of --sample sample.guidance=W (the card names the run's w)
        trial = copy.deepcopy(cfg)
        trial.sample.guidance = guidance
        if problem := guidance_problem(trial):
            raise ValueError(f"export --guidance: {problem}")
        sample = [*sample, f"sample.guidance={guidance}"]
    cfg, resampled = _set_sampling(cfg, sample, f"{ckpt}: export --sample")
    net = build_network(cfg)
    load_weights(net, state["ema"], ckpt)
    run = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    step = int(state["step"])
    name = Path(out).name.removesuffix(SUFFIX)
    folder = Path(out).parent
    folder.mkdir(parents=True, exist_ok=True)
    commits, machines = recorded(run / "log.txt", "commit"), recorded(run / "log.txt", "machine")
    exporting = source_commit() or "unknown"
    meta = {
        "format": FORMAT,
        "name": name,
        "config": json.dumps(json.loads(json.dumps(_container(cfg))), sort_keys=True),
        "architecture": architecture(cfg, net),
        "step": str(step),
        "dtype": "float16" if half else "float32",
        "parameters": str(sum(p.numel() for p in net.parameters())),
        "commit": commits[-1] if commits else exporting,
        "commit_source": "from the run's log.txt" if commits else "the exporting checkout's; the run recorded none",
        "torch": str(state.get("torch", "unknown")),
    }
    timed = "train_seconds" in state  # train's training time (audiodiff.train), else mtime minus the start
    facts = {
        "name": name,
        "meta": meta,
        "cfg": cfg,
        "commits": commits,
        "machines": machines,
        "exporting_commit": exporting,
        "wall_s": float(state["train_seconds"]) if timed else wall_seconds(run_start(run), ckpt),
        "train_pieces": int(state.get("train_pieces", 1)) if timed else None,
        "train_seconds_note": state.get("train_seconds_note"),
        "resumes": _resume_lines(run / "log.txt"),
        "sliced": sliced,
        "prepare": parse_prepare(prepare) if prepare else guess_prepare(cfg.data.train),
        "curve": loss_curve(run / "log.txt", step),
        "metrics": _metrics(metrics, step) if metrics else None,
        "resampled": resampled,
    }
    paths = [folder / f"{name}{ext}" for ext in (SUFFIX, ".yaml", ".loss.json", ".md")]
    atomic_write_bytes(paths[0], save(_tensors(state["ema"], net, half), metadata=meta))
    atomic_write_bytes(paths[1], to_yaml(cfg).encode())
    write_json(paths[2], _loss_record(facts))
    write_card(paths[3], facts, paths[0].stat().st_size)
    return paths


def _set_sampling(cfg, items, source: str):
    """(cfg with the `sample.*` overrides, {key: (run's value, release's value)} of what changed)."""
    from audiodiff.config import config_changes, with_overrides

    for item in items:
        if not item.startswith("sample.") or "=" not in item:
            raise ValueError(f"{source}: {item!r} is not sample.KEY=VALUE (only sampling settings change at export)")
    new = with_overrides(cfg, list(items), source) if items else cfg
    return new, config_changes(cfg, new)


def _container(cfg) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)


def _resume_lines(log: Path) -> list[str]:
    return [ln.strip() for ln in log.read_text().splitlines() if ": resumed from " in ln] if log.is_file() else []


def _loss_record(facts: dict) -> dict:
    """NAME.loss.json: what audiodiff.reproduce needs to re-train the recipe and compare its curve."""
    cfg = facts["cfg"]
    return {
        "format": FORMAT,
        "name": facts["name"],
        "prepare": facts["prepare"],
        "seed": cfg.train.seed,
        "log_every": cfg.train.log_every,
        "fast_cpu": cfg.train.fast_cpu,
        "machine": facts["machines"][-1] if facts["machines"] else None,
        "commit": facts["meta"]["commit"],
        **facts["curve"],
    }


def _metrics(path: str | Path, step: int) -> dict:
    """{"source", "step", "values", "convergence", "checkpoints"} from an evaluate metrics.json or a
    learning_curve curve.json (its row at `step`; "checkpoints": each metric's steps with a value, which say
    why a verdict is missing); numbers measured at another step than the exported one are refused."""
    from audiodiff.checkpoint import read_json

    found = read_json(path)
    if isinstance(found, dict) and isinstance(found.get("metrics"), dict):  # evaluate's metrics.json
        run = found.get("run") if isinstance(found.get("run"), dict) else {}
        measured = run.get("step")  # the generated set's checkpoint step, when it came from one
        if measured is not None and measured != step:
            raise ValueError(f"--metrics {path}: measured on samples of step {measured}, the export is step {step}")
        values = {k: v for k, v in found["metrics"].items() if isinstance(v, (int, float))}
        return {"source": str(path), "step": measured, "values": values, "convergence": [], "checkpoints": {}}
    if isinstance(found, dict) and isinstance(found.get("rows"), list) and found["rows"]:  # curve.json
        row = next((r for r in found["rows"] if isinstance(r, dict) and r.get("step") == step), None)
        if row is None:
            steps = [r.get("step") for r in found["rows"] if isinstance(r, dict)]
            raise ValueError(f"--metrics {path}: no row at step {step}, the exported one (rows at steps {steps})")
        values = {k: v for k, v in row.items() if k not in ("step", "wall_s") and isinstance(v, (int, float))}
        rows = [r for r in found["rows"] if isinstance(r, dict) and isinstance(r.get("step"), int)]
        names = {k for r in rows for k in r if k not in ("step", "wall_s")}
        steps = {m: sorted(r["step"] for r in rows if isinstance(r.get(m), (int, float))) for m in names}
        verdicts = found.get("convergence") or []
        return {"source": str(path), "step": step, "values": values, "convergence": verdicts, "checkpoints": steps}
    raise ValueError(f"--metrics {path}: neither an evaluate metrics.json ('metrics') nor a curve.json ('rows')")
