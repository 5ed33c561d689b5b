"""recipes/pretrained_demo.py (make demo's stage 6): every shipped model is sampled; those of the demo's
corpus are evaluated and put beside the short run in one report; nothing shipped writes nothing."""

import importlib.util
import json
import re
from pathlib import Path

import pytest

from audiodiff import release
from tests.conftest import run_cli, train_cli, write_corpus

ROOT = Path(__file__).parents[1]
spec = importlib.util.spec_from_file_location("pretrained_demo", ROOT / "recipes" / "pretrained_demo.py")
demo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(demo)
EVAL = "--metrics mean_spectrum"


def test_nothing_shipped_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(release, "PRETRAINED", tmp_path / "empty")
    assert demo.main(["--out", str(tmp_path / "out"), "--ref", str(tmp_path)]) == []
    assert "no pretrained models shipped yet" in capsys.readouterr().out and not (tmp_path / "out").exists()


def test_shipped_models_are_sampled_and_the_demo_corpus_ones_reported(tmp_path, monkeypatch):
    config = tmp_path / "conf.yaml"
    config.write_text("diffusion:\n  schedule: diffwave\n  loss_type: l1\nsample:\n  sampler: fast\n")
    corpus = write_corpus(tmp_path)
    run = train_cli(config, corpus, tmp_path / "exp", "r", "train.steps=2", "data.segment=2560")  # 160 ms
    shipped = tmp_path / "shipped"
    assert run_cli("export", run, "--out", shipped / "dig", "--prepare", "digits speakers=3").exit_code == 0
    assert run_cli("export", run, "--out", shipped / "other").exit_code == 0  # no corpus recorded
    monkeypatch.setattr(release, "PRETRAINED", shipped)
    short = tmp_path / "exp" / "r"
    assert run_cli("generate", "--ckpt", short, "--seeds", "0-1", "--out", short / "generated").exit_code == 0
    res = run_cli("evaluate", "--ref", corpus, "--gen", short / "generated", "--out", short / "eval", *EVAL.split())
    assert res.exit_code == 0, res.output
    out = tmp_path / "pre"
    args = ["--out", str(out), "--beside", str(short / "eval"), "--ref", str(corpus), "--seeds", "0-1"]
    assert demo.main([*args, "--evaluate", EVAL]) == [out / "dig", out / "other"]
    for name in ("dig", "other"):
        assert sorted(p.name for p in (out / name / "generated").glob("*.wav")) == ["0.wav", "1.wav"]
    assert (out / "dig" / "eval" / "metrics.json").is_file() and not (out / "other" / "eval").exists()
    page = (out / "report.html").read_text()
    columns = re.findall(r"<th[^>]*>([^<]*)</th>", page)
    assert columns[:3] == ["", "r", "dig"], columns[:5]  # the short run first, then the shipped digits model
    assert "other/generated" not in page


def test_each_model_is_scored_by_the_classifier_at_its_sample_rate(tmp_path, capsys):
    """digits_mel_* generates at 8 kHz: the demo scores it with the 8 kHz classifier, not the 16 kHz one."""
    config = tmp_path / "conf.yaml"
    config.write_text("diffusion:\n  schedule: diffwave\nsample:\n  sampler: fast\n")
    corpus = write_corpus(tmp_path)
    models = {}
    for rate in (8000, 16000, 22050):
        run = train_cli(config, corpus, tmp_path / "exp", f"r{rate}", "train.steps=1", f"data.sample_rate={rate}")
        assert run_cli("export", run, "--out", tmp_path / "rel" / f"m{rate}").exit_code == 0
        models[rate] = tmp_path / "rel" / f"m{rate}.safetensors"
    folders = []
    for rate in (16000, 8000):
        folder = tmp_path / f"clf{rate}"
        folder.mkdir()
        (folder / "classifier.json").write_text(json.dumps({"config": {"sample_rate": rate}}))
        folders.append(str(folder))
    assert demo.classifier_for(models[8000], folders) == folders[1]
    assert demo.classifier_for(models[16000], folders) == folders[0]
    assert demo.classifier_for(models[22050], folders) == folders[0]  # none at its rate: the first
    assert demo.classifier_for(models[8000], []) is None
    with pytest.raises(SystemExit):
        demo.main(["--out", str(tmp_path / "o"), "--ref", str(corpus), "--classifier", str(tmp_path / "nope")])
    assert f"--classifier {tmp_path / 'nope'}: no classifier.json" in capsys.readouterr().err
