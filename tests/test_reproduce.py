"""audiodiff.reproduce: the comparison passes a curve within the tolerance and fails one that leaves the
recorded curve; re-training a tiny release reproduces its curve bit for bit on the same machine; and
every shipped model's recipe still trains along the curve recorded at export (slow)."""

import json

import numpy as np
import pytest

from audiodiff.checkpoint import read_json
from audiodiff.data.corpora import prepare
from audiodiff.release import shipped_models
from audiodiff.reproduce import RTOL, SAME_MACHINE_RTOL, compare_curves, retrain_curve, tolerance
from tests.conftest import TINY, base_args, run_cli, train_cli, write_corpus

SHIPPED = shipped_models()
BUDGET = 200  # re-trained steps per shipped model (its first 200, or all it has)


def curve(values, every=10):
    return {"step": [every * (i + 1) for i in range(len(values))], "denoise": [float(v) for v in values]}


def test_a_curve_within_the_drift_passes_and_a_diverging_one_fails():
    rng = np.random.default_rng(0)
    base = 0.2 + 0.8 * np.exp(-np.arange(20) / 5) + 0.02 * rng.standard_normal(20)
    same = compare_curves(curve(base), curve(base))
    assert same["ok"] and same["mean_rel"] == 0 and same["points"] == 20
    drift = base * (1 + 0.3 * RTOL * rng.standard_normal(20))  # about the measured cross-machine drift
    assert compare_curves(curve(base), curve(drift))["ok"]
    diverging = base * np.where(np.arange(20) >= 10, 1 + 3 * RTOL, 1.0)  # off by 3 RTOL from step 110
    res = compare_curves(curve(base), curve(diverging))
    assert not res["ok"] and res["max_step"] >= 110 and "does NOT track" in res["message"]
    assert not compare_curves(curve(base), curve(base * (1 + 2 * RTOL)))["ok"]  # a uniformly shifted curve


def test_only_common_steps_are_compared_and_too_few_are_an_error():
    longer = curve([1.0, 0.8, 0.6, 0.5])
    assert compare_curves(longer, curve([1.0, 0.8]))["points"] == 2  # a short re-run: its own steps
    with pytest.raises(ValueError, match=r"share 1 logged step\(s\)"):
        compare_curves(curve([1.0, 2.0]), {"step": [10, 25], "denoise": [1.0, 2.0]})
    with pytest.raises(ValueError, match="the recorded curve has no 'denoise' values"):
        compare_curves({"step": [10, 20]}, curve([1.0, 2.0]))


@pytest.fixture(scope="module")
def ar_release(tmp_path_factory):
    """A tiny DiffWave trained 6 steps on a 40-clip `ar` corpus, exported with its prepare record."""
    root = tmp_path_factory.mktemp("repro")
    prepare("ar", str(root / "ar"), {"n": "40"})
    config = root / "conf.yaml"
    config.write_text("diffusion:\n  schedule: diffwave\n  loss_type: l1\nsample:\n  sampler: fast\n")
    run = train_cli(config, root / "ar" / "data" / "train", root / "exp", "r", "train.steps=6", "data.sample_rate=8000")
    res = run_cli("export", run, "--out", root / "rel" / "tiny", "--prepare", "ar n=40")
    assert res.exit_code == 0, res.output
    return root / "rel" / "tiny.safetensors"


def test_a_release_retrains_bit_for_bit_on_the_same_machine(tmp_path, ar_release):
    assert "train.log_every=1" in TINY
    recorded = read_json(ar_release.with_name("tiny.loss.json"))
    rerun = retrain_curve(ar_release, tmp_path, 6)
    assert rerun["step"] == recorded["step"] == [1, 2, 3, 4, 5, 6]
    assert rerun["denoise"] == recorded["denoise"]  # the corpus prepared anew, the same seed
    assert tolerance(recorded)[0] == SAME_MACHINE_RTOL  # log.txt named this machine
    assert tolerance(recorded | {"machine": "another CPU, 8 thread(s), torch 9"})[0] == RTOL
    assert (tmp_path / "data" / "ar.json").is_file()


def test_a_mel_features_release_dumps_its_log_mels_and_retrains_bit_for_bit(tmp_path):
    """A recipe trained on dumped log-mels (task mel_features, like digits_mel_*): the re-run dumps them
    from the corpus it prepares anew (it stopped at 'no dumped features' before) and tracks exactly."""
    prepare("ar", str(tmp_path / "ar"), {"n": "40"})
    train_dir = tmp_path / "ar" / "data" / "train"
    assert run_cli("dump-features", train_dir, "--preset", "speech8k", "--sample-rate", "8000").exit_code == 0
    config = tmp_path / "conf.yaml"
    config.write_text(
        "task: mel_features\ndiffusion: {kind: edm}\nsample: {sampler: heun}\n"
        "model: {kind: unet, unet: {channels: 8, channel_mult: [1, 2], attn_levels: [], num_res_blocks: 1, "
        "embedding: fourier}}\ndata: {sample_rate: 8000, mel_preset: speech8k}\n"
    )
    run = train_cli(config, train_dir, tmp_path / "exp", "m", "train.steps=4", "data.segment=2048")
    assert run_cli("export", run, "--out", tmp_path / "rel" / "mel", "--prepare", "ar n=40").exit_code == 0
    recorded = read_json(tmp_path / "rel" / "mel.loss.json")
    rerun = retrain_curve(tmp_path / "rel" / "mel.safetensors", tmp_path / "w", 4)
    assert (tmp_path / "w" / "data" / "data" / "train" / "feats.scp").is_file()
    assert rerun["step"] == [1, 2, 3, 4] and rerun["denoise"] == recorded["denoise"]


def test_a_release_whose_config_keeps_a_time_slice_retrains_all_the_steps(tmp_path, ar_release, monkeypatch):
    """A release exported with train.max_minutes in its config (before export cleared it) re-trains the
    asked steps instead of stopping after the first slice."""
    import itertools

    from safetensors import safe_open
    from safetensors.torch import save_file

    import audiodiff.train

    with safe_open(str(ar_release), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    cfg = json.loads(meta["config"])
    cfg["train"]["max_minutes"] = 0.5
    save_file(tensors, str(tmp_path / "sliced.safetensors"), metadata=meta | {"config": json.dumps(cfg)})
    (tmp_path / "sliced.loss.json").write_bytes(ar_release.with_name("tiny.loss.json").read_bytes())
    minutes = itertools.count()  # each look at the clock is a minute later: a slice would end at step 1
    monkeypatch.setattr(audiodiff.train, "clock", lambda: 60.0 * next(minutes))
    assert retrain_curve(tmp_path / "sliced.safetensors", tmp_path / "w", 4)["step"] == [1, 2, 3, 4]


def test_retraining_needs_the_prepare_record(tmp_path, ar_release):
    record = ar_release.with_name("tiny.loss.json")
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(ar_release.read_bytes())
    with pytest.raises(FileNotFoundError, match="no copy.loss.json beside it"):
        retrain_curve(copy, tmp_path / "w", 2)
    (tmp_path / "copy.loss.json").write_text(json.dumps(read_json(record) | {"prepare": None}))
    with pytest.raises(ValueError, match="no 'prepare' record"):
        retrain_curve(copy, tmp_path / "w", 2)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", sorted(SHIPPED) or [pytest.param("none", marks=pytest.mark.skip(reason="no model shipped yet"))]
)
def test_a_shipped_model_retrains_along_its_recorded_curve(name, tmp_path):
    """The recipe on the card still trains the way the shipped weights were trained (first BUDGET steps)."""
    record = read_json(SHIPPED[name].with_name(f"{name}.loss.json"))
    steps = min(BUDGET, record["step"][-1])
    rtol, why = tolerance(record)
    result = compare_curves(record, retrain_curve(SHIPPED[name], tmp_path, steps), rtol)
    assert result["ok"], f"{name}: {result['message']}; {why}"


def test_tiny_corpus_is_not_a_preparable_one(tmp_path):
    """An export from a data dir no corpus wrote records no prepare command (the card says to bring the data)."""
    config = tmp_path / "conf.yaml"
    config.write_text("sample:\n  sampler: fast\n")
    run = train_cli(config, write_corpus(tmp_path), tmp_path / "exp", "r", "train.steps=1")
    assert run_cli("export", run, "--out", tmp_path / "rel" / "t").exit_code == 0
    assert read_json(tmp_path / "rel" / "t.loss.json")["prepare"] is None
    assert "names no corpus audiodiff prepares" in (tmp_path / "rel" / "t.md").read_text()


def test_stop_at_trains_the_start_of_the_full_runs_schedule(tmp_path, config):
    """Re-training the first steps of a cosine run keeps the whole run's schedule (train.steps unchanged)."""
    from audiodiff.config import load_config
    from audiodiff.release import loss_curve
    from audiodiff.train import train

    corpus = write_corpus(tmp_path)

    def curve_of(name, steps, stop_at=None):
        extra = (f"train.steps={steps}", "train.schedule=cosine", "train.lr=1e-2")
        cfg = load_config(config, base_args(corpus, tmp_path / "exp", name, *extra))
        return loss_curve(train(cfg, progress=False, stop_at=stop_at) / "log.txt", 4)

    full, start, short = curve_of("full", 8), curve_of("start", 8, stop_at=4), curve_of("short", 4)
    assert start == full and start["step"] == [1, 2, 3, 4]
    assert short["denoise"][2:] != full["denoise"][2:]  # a 4-step cosine decays faster
    assert (tmp_path / "exp" / "start" / "checkpoints" / "ckpt-00000004.pt").is_file()
