#!/usr/bin/env python
"""Generate from every model shipped in audiodiff/pretrained/; evaluate those of the demo's corpus beside the short run.

    python ../../recipes/pretrained_demo.py --out exp/pretrained --beside exp/demo/eval --corpus digits \\
        --ref data/digits/data/test --classifier data/digits/classifier --classifier data/digits/classifier8k

Each shipped model NAME is sampled with its own sampler into `<out>/NAME/generated` (`audiodiff
generate --ckpt NAME`: clips and a spectrogram sheet, or images and a grid). A model of the demo's
corpus (`--corpus`, from the prepare record in NAME.loss.json) is also evaluated against `--ref`
with the `--classifier` trained at the model's sample rate (the first one given if none is; a
classifier resamples the reference clips to its rate) into `<out>/NAME/eval`, and
`<out>/report.html` puts those models beside the short run's evaluation (`--beside`): what the
toolkit makes when trained, next to what the demo's few steps make. Models of other corpora are
generated only (their references are other corpora; their cards hold their metrics). No model
shipped: says so and writes nothing.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from learning_curve import _cli  # noqa: E402  (an audiodiff command in this process)

from audiodiff.checkpoint import read_json  # noqa: E402
from audiodiff.release import shipped_models  # noqa: E402


def corpus_of(path: Path) -> str | None:
    """The corpus a shipped model was trained on (its NAME.loss.json prepare record), None if not recorded."""
    record = path.with_name(f"{path.stem}.loss.json")
    found = read_json(record) if record.is_file() else None
    recipe = found.get("prepare") if isinstance(found, dict) else None
    return recipe.get("corpus") if isinstance(recipe, dict) else None


def classifier_for(model: Path, classifiers: list[str]) -> str | None:
    """The classifier directory whose classifier.json rate is the model's data.sample_rate, else the first."""
    from audiodiff.release import read_release, release_config

    rate = release_config(read_release(model, tensors=False)[0], model).data.sample_rate
    for folder in classifiers:
        found = read_json(Path(folder) / "classifier.json")
        if isinstance(found, dict) and found.get("config", {}).get("sample_rate") == rate:
            return folder
    return classifiers[0] if classifiers else None


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="Folder for <NAME>/generated, <NAME>/eval and report.html.")
    parser.add_argument("--beside", default=None, help="The short run's evaluate folder, first in the report.")
    parser.add_argument("--corpus", default="digits", help="The demo's corpus: its models are evaluated.")
    parser.add_argument("--ref", required=True, help="The demo corpus's reference split.")
    parser.add_argument(
        "--classifier", action="append", default=[], help="An evaluation classifier (repeat: one per sample rate)."
    )
    parser.add_argument("--seeds", default="0-15")
    parser.add_argument("--evaluate", default="", help="Extra `audiodiff evaluate` options, e.g. '--metrics fad'.")
    args = parser.parse_args(argv)
    for folder in args.classifier:
        if not (Path(folder) / "classifier.json").is_file():
            parser.error(f"--classifier {folder}: no classifier.json (train one with `audiodiff train-classifier`)")
    shipped = shipped_models()
    if not shipped:
        print("no pretrained models shipped yet (audiodiff/pretrained/ holds none): nothing to generate")
        return []
    out, together = Path(args.out), [args.beside] if args.beside else []
    extra = shlex.split(args.evaluate)
    for name, path in shipped.items():
        gen, ev = out / name / "generated", out / name / "eval"
        _cli(["generate", "--ckpt", name, "--seeds", args.seeds, "--out", str(gen), "--device", "cpu"])
        if corpus_of(path) == args.corpus:
            clf = classifier_for(path, args.classifier)
            scorer = ["--classifier", clf] if clf else []
            _cli(
                ["evaluate", "--ref", args.ref, "--gen", str(gen), "--out", str(ev), "--device", "cpu", *scorer, *extra]
            )
            together.append(str(ev))
        print(f"{name}: generated into {gen}" + (f", evaluated in {ev}" if ev.is_dir() else ""), flush=True)
    if len(together) > (1 if args.beside else 0):
        _cli(["report", *together, "--out", str(out / "report.html")])
        print(f"listening report: {out / 'report.html'}")
    return [out / name for name in shipped]


if __name__ == "__main__":
    main()
