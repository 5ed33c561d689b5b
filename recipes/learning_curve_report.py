"""The outputs of a learning curve (recipes/learning_curve.py, whose docstring describes them): curve.md,
curve.png (`--compare` curves beside) and, for images, curve_samples.png.
"""

from __future__ import annotations

from pathlib import Path

from audiodiff.eval.context import BETTER


def curve_markdown(result: dict) -> str:
    """curve.md: the metrics per checkpoint (and the real-data floor), then the convergence verdicts."""
    metrics = result["metrics"]
    lines = [
        f"run {result['run']}, commit {result['commit']}, {result['machine']}; {result['n_outputs']} generated "
        f"files (seeds {result['seeds']}) per checkpoint, {result['weights']}, generate options: {result['generate']}",
        "",
        *([result["wall_note"], ""] if result.get("wall_note") else []),
        "| step | wall s | " + " | ".join(metrics) + " | rule holds (all metrics) |",
        "|---:|---:|" + "---:|" * len(metrics) + "---|",
    ]
    words = {True: "yes", False: "no", None: "-"}
    for r, held in zip(sorted(result["rows"], key=lambda r: r["step"]), result["rule_by_step"]):
        cols = ["-" if r[m] is None else f"{r[m]:.4g}" for m in metrics]
        wall = r["wall_s"] if r["wall_s"] is not None else "-"
        lines.append(f"| {r['step']} | {wall} | " + " | ".join(cols) + f" | {words[held]} |")
    if result["floor"]:
        cols = [f"{result['floor'][m]:.4g}" if m in result["floor"] else "-" for m in metrics]
        lines.append("| real data (floor) | - | " + " | ".join(cols) + " | |")
    lines += ["", "Convergence (the last doubling of steps improves the metric by < 5%):", ""]
    for v in result["convergence"]:
        if v["converged"] is None:
            lines.append(f"- {v['metric']}: fewer than two checkpoints")
            continue
        word = "converged" if v["converged"] else "NOT converged"
        of = " of |m| (best at 0)" if v.get("better") == "zero" else ""
        lines.append(
            f"- {v['metric']}: {v['before']:.4g} at step {v['from_step']} -> {v['after']:.4g} at step "
            f"{v['to_step']}, improvement {100 * v['improvement']:+.1f}%{of}: {word}"
        )
    return "\n".join(lines) + "\n"


def plot_curves(result: dict, path: Path, others: tuple[dict, ...] = ()) -> list[str]:
    """curve.png: each metric against training steps (top row) and wall time (bottom row, when known);
    `others` (curve.json results of other runs) are drawn beside this one, labelled by their "label".
    Returns the labels of the first panel's lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics, curves = result["metrics"], (result, *others)
    axes_x = [("step", "training step", 1)]
    if any(r.get("wall_s") is not None for c in curves for r in c["rows"]):
        axes_x.append(("wall_s", "training wall time (min)", 60))
    fig, axes = plt.subplots(len(axes_x), len(metrics), figsize=(3.2 * len(metrics), 2.8 * len(axes_x)), squeeze=False)
    for row, (key, label, per) in zip(axes, axes_x):
        for ax, m in zip(row, metrics):
            for curve in curves:
                points = [(r[key] / per, r[m]) for r in curve["rows"] if r.get(m) is not None and r[key] is not None]
                if points:
                    ax.plot(*zip(*sorted(points)), "o-", ms=3, label=curve.get("label") or "model")
            if m in result["floor"]:
                ax.axhline(result["floor"][m], color="gray", ls="--", label="real data")
            ax.set_title(f"{m} ({BETTER[result['better'][m]]})", fontsize=9)
            ax.set_xlabel(label)
            ax.ticklabel_format(axis="y", useOffset=False)
    labels = axes[0][0].get_legend_handles_labels()[1]
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return labels


def sample_rows(out: Path, steps: list[int], per_row: int = 16) -> bool:
    """Image runs: curve_samples.png, the first `per_row` samples of each checkpoint, one row per step."""
    import numpy as np
    from PIL import Image

    from audiodiff.eval.images import load_images
    from audiodiff.eval.sets import generated_set

    folders = [out / f"step_{s:08d}" / "generated" for s in steps]
    try:
        sets = [load_images(f, generated_set(f))[:per_row] for f in folders]
    except FileNotFoundError:  # audio runs: no pictures to show
        return False
    c, h, w = sets[0].shape[1:]
    sheet = np.full((len(sets) * (h + 2), per_row * (w + 2), c), 128, np.uint8)
    for r, images in enumerate(sets):
        for k, image in enumerate(images):
            sheet[r * (h + 2) : r * (h + 2) + h, k * (w + 2) : k * (w + 2) + w] = image.transpose(1, 2, 0)
    scale = max(1, 256 // (h + 2))
    picture = Image.fromarray(sheet[..., 0] if c == 1 else sheet)
    picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST).save(out / "curve_samples.png")
    return True
