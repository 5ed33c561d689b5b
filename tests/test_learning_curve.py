"""recipes/learning_curve.py: one row per checkpoint, the same seeds each time, the convergence rule."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from audiodiff.cli import main as cli

ROOT = Path(__file__).parents[1]
spec = importlib.util.spec_from_file_location("learning_curve", ROOT / "recipes" / "learning_curve.py")
lc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lc)


def _rows(values, metric="m"):
    return [{"step": step, metric: v} for step, v in values]


def test_rule_compares_the_last_step_with_the_one_at_half_of_it():
    # lower is better: 10 -> 9.6 over the last doubling (2000 -> 4000) is a 4% gain: converged,
    # although 1000 -> 4000 gained 52%
    rows = _rows([(1000, 20.0), (2000, 10.0), (3000, 9.8), (4000, 9.6)])
    v = lc.convergence(rows, "m", "lower")
    assert (v["from_step"], v["to_step"]) == (2000, 4000)
    assert v["improvement"] == pytest.approx(0.04) and v["converged"] is True
    # 10 -> 9.4 is 6%: not converged
    assert lc.convergence(_rows([(2000, 10.0), (4000, 9.4)]), "m", "lower")["converged"] is False


def test_rule_direction_and_worsening():
    # higher is better: 2.0 -> 2.2 is +10% (not converged); read as lower-is-better it got worse (converged)
    rows = _rows([(500, 2.0), (1000, 2.2)])
    assert lc.convergence(rows, "m", "higher")["improvement"] == pytest.approx(0.1)
    assert lc.convergence(rows, "m", "higher")["converged"] is False
    assert lc.convergence(rows, "m", "lower")["converged"] is True
    assert lc.convergence(rows[:1], "m", "higher")["converged"] is None


def test_a_signed_error_improves_towards_0_from_either_side():
    # -3 dB -> +0.5 dB: |m| 83% smaller (not converged); read as lower-is-better it got 117% worse
    v = lc.convergence(_rows([(500, -3.0), (1000, 0.5)]), "m", "zero")
    assert v["improvement"] == pytest.approx(2.5 / 3) and v["converged"] is False and v["better"] == "zero"
    # -0.5 -> -3: worse (converged by the rule); lower-is-better read it as a 500% gain
    assert lc.convergence(_rows([(500, -0.5), (1000, -3.0)]), "m", "zero")["improvement"] == pytest.approx(-5.0)
    metrics = ["power_spectrum_db_low", "psd_band2_err_db", "fad", "pesq_wb", "inception_score"]
    # eval.context's direction, but --higher (here only pesq_wb) decides which are higher-is-better
    assert list(lc.directions(metrics, {"pesq_wb"}).values()) == ["zero", "zero", "lower", "higher", "lower"]
    with pytest.raises(ValueError, match="better='up'; allowed: higher, lower, zero"):
        lc.convergence(_rows([(1, 1.0)]), "m", "up")


def test_rule_by_step_cuts_the_curve_at_each_checkpoint():
    rows = _rows([(250, 5.0), (500, 3.0), (750, 2.0), (1000, 2.9), (2000, 2.85)])
    # 500 vs 250: 40% better; 750 vs 500 (nearest 375: 250 and 500 tie at 125, the lower step wins): 60%;
    # 1000 vs 500: 3.3%; 2000 vs 1000: 1.7%
    assert lc.rule_by_step(rows, {"m": "lower"}) == [None, False, False, True, True]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from audiodiff.data.corpora import prepare

    root = tmp_path_factory.mktemp("lc")
    prepare("checkerboard", str(root / "cb"), {"n": "40", "size": "8", "sides": "2,4"})
    conf = ROOT / "egs" / "checkerboard" / "conf" / "small16.yaml"
    overrides = [
        "name=run",
        f"exp_dir={root / 'exp'}",
        f"data.train={root / 'cb' / 'data' / 'train'}",
        "data.image_shape=[1,8,8]",
        "model.unet.channels=8",
        "model.unet.groups=8",
        "sample.steps=3",
        "train.steps=6",
        "train.batch_size=4",
        "train.warmup_steps=0",
        "train.ckpt_every=2",
        "train.log_every=2",
    ]
    res = CliRunner().invoke(cli, ["train", str(conf), "--no-progress", *overrides], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return root


def test_curve_has_one_row_per_checkpoint_sampled_with_the_same_seeds(tiny_run):
    run = tiny_run / "exp" / "run"
    assert len(list((run / "checkpoints").glob("ckpt-*.pt"))) == 3  # keep_ckpts: 0 keeps them all
    argv = [str(run), "--ref", str(tiny_run / "cb" / "data" / "test"), "--seeds", "0-2,7"]
    result = lc.main([*argv, "--metrics", "pixel_histogram_tv,power_spectrum_log10_l1"])
    assert [r["step"] for r in result["rows"]] == [2, 4, 6]
    walls = [r["wall_s"] for r in result["rows"]]
    assert all(w is not None and w >= 0 for w in walls) and walls == sorted(walls)
    for step in (2, 4, 6):
        settings = json.loads((run / "curve" / f"step_{step:08d}" / "generated" / "settings.json").read_text())
        assert settings["seeds"] == [0, 1, 2, 7] and settings["step"] == step and settings["weights"] == "ema"
    # the rows are the evaluations' own numbers, and the verdict is the rule on them
    metrics = json.loads((run / "curve" / "step_00000006" / "eval" / "metrics.json").read_text())["metrics"]
    assert result["rows"][-1]["pixel_histogram_tv"] == metrics["pixel_histogram_tv"]
    verdict = result["convergence"][0]
    assert (verdict["from_step"], verdict["to_step"]) == (2, 6)  # 2 and 4 are equally near 3: the lower wins
    md = (run / "curve" / "curve.md").read_text()
    assert md.count("\n| ") == 1 + 3 and (run / "curve" / "curve.png").stat().st_size > 1000
    from PIL import Image

    sheet = Image.open(run / "curve" / "curve_samples.png")  # 3 rows of 16 samples of 8 + 2 pixels, x25
    assert sheet.size == (16 * 10 * 25, 3 * 10 * 25)
    # other sampler options: the checkpoint is sampled again, with them
    again = lc.main([*argv, "--metrics", "pixel_histogram_tv", "--steps", "6", "--generate", "--steps 2"])
    settings = json.loads((run / "curve" / "step_00000006" / "generated" / "settings.json").read_text())
    assert settings["steps"] == 2 and again["rows"][0]["step"] == 6
    # --steps picks checkpoints; the others' rows are not there
    assert [r["step"] for r in lc.main([*argv, "--metrics", "pixel_histogram_tv", "--steps", "2,6"])["rows"]] == [2, 6]


def test_wall_time_counts_from_the_first_start_of_a_resumed_run(tmp_path):
    board = tmp_path / "tensorboard"
    board.mkdir()
    (board / "events.out.tfevents.1000.vm.11.0").write_bytes(b"")
    (board / "events.out.tfevents.1900.vm.12.0").write_bytes(b"")  # the resume's file
    (tmp_path / "config.yaml").write_text("name: x\n")  # rewritten by the resume: not the start
    ckpt = tmp_path / "ckpt-00000010.pt"
    ckpt.write_bytes(b"")
    import os

    os.utime(ckpt, (2500, 2500))
    assert lc.run_start(tmp_path) == 1000 and lc.wall_seconds(1000, ckpt) == 1500


def test_an_interrupted_generate_or_a_truncated_metrics_json_is_redone(tmp_path, monkeypatch, capsys):
    import argparse

    called = []

    def fake_cli(argv):  # generate and evaluate, recorded; evaluate scores 2.0
        called.append(argv[0])
        if argv[0] == "evaluate":
            out = Path(argv[argv.index("--out") + 1])
            out.mkdir(parents=True, exist_ok=True)
            (out / "metrics.json").write_text(json.dumps({"metrics": {"m": 2.0}}))

    monkeypatch.setattr(lc, "_cli", fake_cli)
    args = argparse.Namespace(seeds="0-1", seed_list=[0, 1], generate=[], evaluate=[], force_eval=False,
                              classifier=None, ref=tmp_path / "ref", metric_list=["m"])  # fmt: skip
    here = tmp_path / "step_00000002"
    (here / "generated").mkdir(parents=True)
    (here / "eval").mkdir()
    (here / "curve_args.json").write_text(json.dumps({"seeds": [0, 1], "generate": []}))
    # a Ctrl-C during generate: the marker it writes first; the eval beside it scored an earlier set
    (here / "generated" / "settings.json").write_text(json.dumps({"complete": False, "files": [], "pending": ["0"]}))
    (here / "eval" / "metrics.json").write_text(json.dumps({"metrics": {"m": 1.0}}))
    assert lc.score_checkpoint(2, tmp_path / "ckpt", tmp_path, args) == {"m": 2.0}
    assert called == ["generate", "evaluate"]
    called.clear()
    (here / "generated" / "settings.json").write_text(json.dumps({"complete": True, "files": ["0.png", "1.png"]}))
    (here / "eval" / "metrics.json").write_text('{"metrics": {"m": 1.')  # truncated
    assert lc.score_checkpoint(2, tmp_path / "ckpt", tmp_path, args) == {"m": 2.0}
    assert called == ["evaluate"] and "not JSON" in capsys.readouterr().out
    called.clear()
    assert lc.score_checkpoint(2, tmp_path / "ckpt", tmp_path, args) == {"m": 2.0} and called == []  # all done


def _fake_evaluate(metrics):
    """A stand-in for `audiodiff generate`/`evaluate` in this process: evaluate writes `metrics`."""

    def fake_cli(argv):
        out = Path(argv[argv.index("--out") + 1])
        out.mkdir(parents=True, exist_ok=True)
        if argv[0] == "generate":
            (out / "settings.json").write_text(json.dumps({"complete": True, "files": ["u.wav"]}))
        else:
            (out / "metrics.json").write_text(json.dumps({"metrics": metrics}))

    return fake_cli


def test_a_curve_metric_the_evaluation_did_not_write_is_an_error_naming_the_keys_it_wrote(tmp_path, monkeypatch):
    # evaluate --metrics mrstft,lsd,pesq writes mrstft, lsd_db, pesq_wb: a curve of 'lsd' and 'pesq'
    # used to be two empty columns
    monkeypatch.setattr(lc, "_cli", _fake_evaluate({"mrstft": 4.1, "lsd_db": 29.3, "pesq_wb": 1.03}))
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"step": 20, "train_seconds": 7.0}, run / "checkpoints" / "ckpt-00000020.pt")  # its wall time is read
    argv = [str(run), "--ref", str(tmp_path), "--seeds", "0", "--generate", "--mels-from x"]
    with pytest.raises(SystemExit, match=r"--metrics lsd,pesq: not in .*metrics\.json, which has mrstft, lsd_db, pes"):
        lc.main([*argv, "--metrics", "mrstft,lsd,pesq"])
    row = lc.main([*argv, "--metrics", "mrstft,lsd_db,pesq_wb"])["rows"][0]
    assert row["lsd_db"] == 29.3 and row["wall_s"] == 7.0
    assert "wall s: training time in one piece (train_seconds" in (run / "curve" / "curve.md").read_text()


def test_a_vocoder_curve_counts_its_clips_and_plots_wall_time_beside_a_compared_run(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(lc, "_cli", _fake_evaluate({"mrstft": 4.0, "pesq_wb": 1.5}))

    def vocode(ckpt, gen, args):  # another trainer's checkpoints: 8 clips, whatever the seeds
        gen.mkdir(parents=True, exist_ok=True)
        (gen / "settings.json").write_text(json.dumps({"complete": True, "files": [f"u{k}.wav" for k in range(8)]}))

    other = tmp_path / "ours.json"
    other.write_text(json.dumps({"label": "audiodiff", "rows": [{"step": 20, "wall_s": 30.0, "mrstft": 5.0}]}))
    args = lc.parse_args([str(tmp_path), "--ref", "r", "--seeds", "0-255", "--metrics", "mrstft,pesq_wb",
                          "--label", "lmnt", "--compare", str(other)])  # fmt: skip
    points = [(20, tmp_path / "w-20.pt", 25.0), (40, tmp_path / "w-40.pt", 50.0)]
    result = lc.learning_curve(tmp_path, tmp_path / "curve", args, points, vocode, weights="raw weights")
    assert [(r["step"], r["wall_s"]) for r in result["rows"]] == [(20, 25.0), (40, 50.0)]
    md = (tmp_path / "curve" / "curve.md").read_text()
    assert "8 generated files (seeds 0-255) per checkpoint, raw weights" in md  # not "256 samples", not EMA
    assert "| 40 | 50.0 | 4 | 1.5 |" in md
    assert result["plotted"] == ["lmnt", "audiodiff"] and result["higher"] == ["pesq_wb"]
    # two metrics (3.2 in x 110 dpi each) in two rows: against steps and against wall time (2.8 in each)
    assert Image.open(tmp_path / "curve" / "curve.png").size == (704, 616)
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(SystemExit):
        lc.parse_args([str(tmp_path), "--ref", "r", "--compare", str(bad)])


def test_a_curve_of_signed_errors_is_titled_and_judged_closest_to_0(tmp_path, monkeypatch):
    """power_spectrum_db_* (+ excess, - deficit) was titled 'lower is better' and ranked so by the rule."""
    from matplotlib.axes import Axes

    scores = {20: {"power_spectrum_db_high": -4.0, "fad": 2.0}, 40: {"power_spectrum_db_high": 1.0, "fad": 1.0}}

    def fake_cli(argv):
        out = Path(argv[argv.index("--out") + 1])
        out.mkdir(parents=True, exist_ok=True)
        step = int(out.parent.name.split("_")[1])
        (out / "metrics.json").write_text(json.dumps({"metrics": scores[step]}))

    def generate(ckpt, gen, args):
        gen.mkdir(parents=True, exist_ok=True)
        (gen / "settings.json").write_text(json.dumps({"complete": True, "files": ["0.png"]}))

    titles = []
    monkeypatch.setattr(lc, "_cli", fake_cli)
    monkeypatch.setattr(Axes, "set_title", lambda self, text, **kw: titles.append(text))
    args = lc.parse_args([str(tmp_path), "--ref", "r", "--seeds", "0", "--metrics", "power_spectrum_db_high,fad"])
    points = [(20, tmp_path / "w-20.pt", None), (40, tmp_path / "w-40.pt", None)]
    result = lc.learning_curve(tmp_path, tmp_path / "curve", args, points, generate)
    assert titles == ["power_spectrum_db_high (closest to 0 is better)", "fad (lower is better)"]
    signed, fad = result["convergence"]
    assert signed["improvement"] == pytest.approx(0.75) and signed["converged"] is False  # |-4| -> |1|
    assert fad["improvement"] == pytest.approx(0.5) and result["better"]["power_spectrum_db_high"] == "zero"
    assert "improvement +75.0% of |m| (best at 0): NOT converged" in (tmp_path / "curve" / "curve.md").read_text()
