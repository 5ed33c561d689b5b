"""What `evaluate` writes: metrics.json/.md and report.html, the page to mail to colleagues.

report.html is self-contained (audio, figures and styles embedded) and says what was compared
(checkpoint and step, task, regularizer and lambda, sampler and steps, set sizes, commits: from the
generated set's settings.json and the training config, `audiodiff.eval.context`), each metric with
its direction and the real-data floor when known, the mean-spectrum and per-band plots, and clips
to hear and see: spectrograms on one colour scale up to each clip's Nyquist, audio at its native
rate, names in natural order (0, 1, 2, ..., 10), references drawn across speakers or classes
(utt2spk / utt2label), or the generated clips' namesakes for vocoders. `write_comparison`
(`audiodiff report`) puts several evaluations side by side, players aligned by clip name.
"""

from __future__ import annotations

import base64
import html
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from audiodiff.audio.io import load_audio, native_rate
from audiodiff.checkpoint import read_json, write_json
from audiodiff.eval.context import BETTER, best_of, direction


@dataclass
class RunView:
    """One evaluated run on the page: its name, metrics.json, eval folder and generated clips by name."""

    name: str
    report: dict
    out: Path
    gen: dict[str, str]  # clip name (file stem) -> path


def natural_key(name: str) -> list:
    """Sort key putting "2" before "10": digit runs compare as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


def _by_name(paths: list[str]) -> dict[str, str]:
    return {Path(p).stem: p for p in sorted(paths, key=lambda p: natural_key(Path(p).stem))}


def _wav_uri(audio: np.ndarray, sample_rate: int) -> str:
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1, 1), sample_rate, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode()


def _file_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def reference_picks(source: str | Path, paths: list[str], names: list[str], n: int) -> tuple[dict[str, str], str]:
    """The reference clips to show beside generated clips `names`, and how they were chosen.

    Vocoders (every shown name is a reference utterance): the namesakes, aligned row by row.
    Otherwise `n` clips drawn round-robin across the speakers (utt2spk) of the data dir `source`,
    each speaker's next clip of a class (utt2label) not shown yet; without utt2spk, across the
    classes; without either, spread evenly over the set. -> ({name: path} in row order, how)
    """
    by_name = _by_name(paths)
    if names and all(name in by_name for name in names):
        return {name: by_name[name] for name in names}, "the same utterances"
    tables = {t: _table(Path(source), t, by_name) for t in ("utt2spk", "utt2label")}
    owner, label = tables["utt2spk"] or tables["utt2label"], tables["utt2label"] or {}
    if not owner:
        keep = sorted({int(i) for i in np.linspace(0, len(by_name) - 1, min(n, len(by_name)))})
        return {k: by_name[k] for i, k in enumerate(by_name) if i in keep}, "spread over the set"
    groups: dict[str, list[str]] = {}
    for name in by_name:
        groups.setdefault(owner.get(name, "?"), []).append(name)
    picks: list[str] = []
    shown: set[str] = set()
    while len(picks) < min(n, len(by_name)):
        for group in (g for g in sorted(groups, key=natural_key) if groups[g] and len(picks) < n):
            pick = next((c for c in groups[group] if label.get(c) not in shown), groups[group][0])
            groups[group].remove(pick)
            picks.append(pick)
            shown.add(label.get(pick))
    what = "speakers" if tables["utt2spk"] else "classes"
    drawn = len({owner.get(k, "?") for k in picks})
    return {k: by_name[k] for k in picks}, f"drawn across {drawn} of {len(groups)} {what}"


def _table(source: Path, name: str, by_name: dict[str, str]) -> dict[str, str]:
    """A data dir's utt2spk/utt2label keyed by clip name ({} if it has none)."""
    from audiodiff.data.kaldi import read_table

    if not (source / name).is_file():
        return {}
    ids = {path: utt for utt, path in _list(source).items()}
    table = read_table(source / name)
    return {clip: table[ids.get(path, clip)] for clip, path in by_name.items() if ids.get(path, clip) in table}


def _list(source: Path) -> dict[str, str]:
    from audiodiff.data.datasets import list_audio

    return list_audio(source)


def _generated(gen: str) -> dict[str, str]:
    """The clips of a generated set as evaluate scored them: those its settings.json lists, else all."""
    from audiodiff.eval.sets import generated_set

    return generated_set(gen) or _list(Path(gen))


# ------------------------------------------------------------------------------------ sections


CONTEXT_ROWS = (
    ("run", "run"),
    ("checkpoint", "checkpoint"),
    ("step", "step"),
    ("task", "task"),
    ("diffusion", "diffusion"),
    ("regularizer", "regularizer"),
    ("sampler", "sampler"),
    ("weights", "weights"),
    ("sample rate (Hz)", "sample_rate"),
    ("training commit", "commit"),
)


def _context(runs: list[RunView]) -> str:
    """What was compared: one column per run."""
    rows = []
    for label, key in CONTEXT_ROWS:
        cells = [r.report.get("run", {}).get(key, "not recorded") for r in runs]
        if key == "run":  # a set without settings.json (real data, another toolkit's output)
            cells = [
                c if r.report.get("run") else "not a generated set (no settings.json)" for c, r in zip(cells, runs)
            ]
        rows.append((label, [html.escape(str(c)) for c in cells]))
    rows.append(("generated set", [f"{html.escape(r.report['gen'])} ({r.report['n_gen']} clips)" for r in runs]))
    rows.append(("reference set", [f"{html.escape(r.report['ref'])} ({r.report['n_ref']} clips)" for r in runs]))
    embedders = [r.report.get("embedder") for r in runs]
    rows.append(
        ("embedder", [html.escape(f"{e['name']} {e['version']}: {e['about']}") if e else "-" for e in embedders])
    )
    rows.append(("evaluated at commit", [html.escape(str(r.report.get("commit") or "not recorded")) for r in runs]))
    head = "".join(f"<th>{html.escape(r.name)}</th>" for r in runs)
    body = "".join(f"<tr><th>{label}</th>{''.join(f'<td>{c}</td>' for c in cells)}</tr>" for label, cells in rows)
    return f'<h2>What was compared</h2><table class="ctx"><tr><th></th>{head}</tr>{body}</table>'


def _metrics(runs: list[RunView], floor: dict | None) -> str:
    """Each metric: which way is better, every run's value (the best in bold), the real-data floor."""
    from audiodiff.eval.registry import current_names

    tables = [current_names(r.report["metrics"], r.report.get("embedder", {}).get("name")) for r in runs]
    keys = list(dict.fromkeys(k for t in tables for k in t))
    rows = []
    for k in keys:
        values = [t.get(k) for t in tables]
        present = [v for v in values if v is not None]
        best = best_of(k, present) if len(present) > 1 else None
        cells = "".join("<td>-</td>" if v is None else f"<td{' class=best' * (v == best)}>{v:.4g}</td>" for v in values)
        arrow = {"higher": "&uarr; higher", "lower": "&darr; lower", "zero": "&rarr; 0 closest"}[direction(k)]
        low = f"{floor[k]:.4g}" if floor and k in floor else "-"
        rows.append(f"<tr><th>{html.escape(k)}</th><td class=dir>{arrow}</td>{cells}<td>{low}</td></tr>")
    head = "".join(f"<th>{html.escape(r.name)}</th>" for r in runs)
    note = "real-data floor: a real-vs-real evaluation (evaluate --floor)" if floor else "no real-data floor given"
    return (
        f"<h2>Metrics</h2><table class=metrics><tr><th>metric</th><th>better</th>{head}<th>real-data floor</th></tr>"
        f"{''.join(rows)}</table><p class=note>{note}; bold: the best run</p>"
    )


def _spectra(runs: list[RunView]) -> str:
    figures = []
    for r in runs:
        for file, what in (("mean_spectrum.png", "mean spectrum"), ("band_spectrum.png", "octave bands")):
            if (r.out / file).is_file():
                name = html.escape(r.name)
                figures.append(
                    f'<figure><img alt="{what} of {name}" src="{_file_uri(r.out / file)}">'
                    f"<figcaption>{name}: {what}, generated vs reference</figcaption></figure>"
                )
    return f'<h2>Spectra</h2><div class="figs">{"".join(figures)}</div>' if figures else ""


def clip_rows(runs: list[RunView], clips: int) -> tuple[list[str], list[list[str | None]], bool]:
    """The clips on the page, row by row: aligned by name (seeds, utterances) over the names all runs
    share, else each run's own first clips in natural order. -> (row labels, paths per run, aligned)"""
    common = set.intersection(*(set(r.gen) for r in runs))
    if common:
        names = sorted(common, key=natural_key)[:clips]
        return names, [[r.gen[n] for r in runs] for n in names], True
    lists = [list(r.gen.values())[:clips] for r in runs]
    rows = range(max(map(len, lists)))
    return [f"#{i + 1}" for i in rows], [[c[i] if i < len(c) else None for c in lists] for i in rows], False


def _clips(runs: list[RunView], rows: tuple, ref: dict[str, str], how: str) -> str:
    """The clip rows: every run's generated clip, then the reference, each playable and seen."""
    names, generated, _ = rows
    aligned = all(n in ref for n in names)  # vocoders: each row's reference is the same utterance
    refs = [ref[n] for n in names] if aligned else list(ref.values())[: len(names)]
    refs += [None] * (len(names) - len(refs))
    cells = [row + [r] for row, r in zip(generated, refs)]
    audio = {p: load_audio(p, native_rate(p)).numpy() for row in cells for p in row if p}
    from audiodiff.eval.plots import spectrogram_uris

    uris, colorbar = spectrogram_uris([(a, native_rate(p)) for p, a in audio.items()])
    images = dict(zip(audio, uris))

    def cell(p: str | None) -> str:
        if p is None:
            return "<td>-</td>"
        name, rate = html.escape(Path(p).name), native_rate(p)
        player = f'<audio controls preload="metadata" src="{_wav_uri(audio[p], rate)}"></audio>'
        image = f'<img alt="spectrogram of {name}" src="{images[p]}">'
        return f'<td><div class="name">{name} &middot; {rate} Hz</div>{player}{image}</td>'

    head = "".join(f"<th>{html.escape(r.name)}</th>" for r in runs) + f"<th>reference ({html.escape(how)})</th>"
    body = "".join(f"<tr><th>{html.escape(n)}</th>{''.join(cell(p) for p in row)}</tr>" for n, row in zip(names, cells))
    return (
        f'<h2>Clips</h2><img class="cbar" alt="colour scale" src="{colorbar}">'
        f'<table class="clips"><tr><th></th>{head}</tr>{body}</table>'
    )


STYLE = (
    "body{font-family:sans-serif;margin:1.5em;color:#222} table{border-collapse:collapse;margin:0.5em 0}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top;font-size:0.9em}"
    "table.metrics td{text-align:right} td.best{font-weight:bold} td.dir{color:#555;text-align:left}"
    ".clips img{display:block;width:320px} .clips audio{width:320px} .name{font-size:0.8em;color:#555}"
    ".figs{display:flex;flex-wrap:wrap;gap:1em} figure{margin:0} figure img{width:460px}"
    "figcaption,.note{font-size:0.8em;color:#555} img.cbar{width:320px}"
)


def _page(path: Path, runs: list[RunView], ref_paths: list[str], floor: dict | None, clips: int) -> None:
    rows = clip_rows(runs, clips)
    ref, how = reference_picks(runs[0].report["ref"], ref_paths, rows[0] if rows[2] else [], clips)
    title = "audiodiff listening report: " + ", ".join(r.name for r in runs)
    refs = {r.report["ref"] for r in runs}
    warn = "" if len(refs) == 1 else f"<p class=note>The runs were scored against different references: {refs}</p>"
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{warn}"
        f"{_context(runs)}{_metrics(runs, floor)}{_spectra(runs)}{_clips(runs, rows, ref, how)}</body></html>"
    )
    path.write_text(body)


def _run_name(report: dict, out: Path) -> str:
    return str(report.get("run", {}).get("run") or (out.parent.name if out.name == "eval" else out.name))


def write_report(path: Path, report: dict, ref_paths: list[str], gen_paths: list[str], clips: int = 8) -> None:
    """Write report.html for one evaluation: its context, metrics, spectra and up to `clips` clips."""
    run = RunView(_run_name(report, path.parent), report, path.parent, _by_name(gen_paths))
    _page(path, [run], list(ref_paths), report.get("floor", {}).get("metrics"), clips)


def write_comparison(
    path: str | Path, evals: list[str | Path], floor: str | Path | None = None, clips: int = 8
) -> None:
    """One page comparing evaluated runs (`evaluate` output folders), as the ablation tables do.

    Clips are aligned by name across runs (seeds for unconditional models, utterances for vocoders).
    `floor`: a real-vs-real evaluation; default: the floor the first run recorded.
    """
    from audiodiff.eval.context import read_floor

    runs = []
    for folder in map(Path, evals):
        if not (folder / "metrics.json").is_file():
            raise FileNotFoundError(f"{folder}: no metrics.json (pass folders written by `audiodiff evaluate`)")
        report = read_json(folder / "metrics.json")
        if "n_gen" not in report or report.get("kind") == "images":
            raise ValueError(f"{folder}/metrics.json: not an audio evaluation; report compares audio runs")
        runs.append(
            RunView(_run_name(report, folder), report, folder, _by_name(list(_generated(report["gen"]).values())))
        )
    floors = (
        read_floor(floor)["metrics"]
        if floor
        else next((r.report["floor"]["metrics"] for r in runs if "floor" in r.report), None)
    )
    _page(Path(path), runs, list(_list(Path(runs[0].report["ref"])).values()), floors, clips)


def write_metrics(out: Path, report: dict, header: str) -> None:
    """metrics.md (a header line and the metrics table: value, which way is better, and the real-data
    floor when a real-vs-real evaluation was given) and metrics.json (the whole report, written atomically)."""
    floor = report.get("floor", {}).get("metrics")
    rows = []
    for k, v in report["metrics"].items():
        cells = [k, f"{v:.4g}", BETTER[direction(k)]]
        if floor is not None:
            cells.append(f"{floor[k]:.4g}" if k in floor else "-")
        rows.append("| " + " | ".join(cells) + " |\n")
    columns = "| metric | value | better |" + (" real-data floor |" if floor is not None else "")
    rule = "|---|---:|---|" + ("---:|" if floor is not None else "")
    (out / "metrics.md").write_text(f"{header}\n\n{columns}\n{rule}\n{''.join(rows)}")
    # Last and atomically: recipes take a metrics.json as a finished evaluation and read it back.
    write_json(out / "metrics.json", report)
