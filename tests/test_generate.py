"""generate writes self-describing sets (settings.json lists exactly its files) and refuses options a
sampler would ignore; evaluate scores exactly the listed set and never a training run directory."""

import json

import pytest
import torch

from audiodiff.eval.sets import read_audio
from audiodiff.generate import _remove_stale, parse_seeds
from audiodiff.set_listing import claim_output, read_set_listing
from tests.conftest import fail_cli, run_cli, train_cli, write_corpus


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    config = root / "conf.yaml"
    config.write_text("diffusion:\n  schedule: diffwave\n  loss_type: l1\nsample:\n  sampler: fast\n")
    corpus = write_corpus(root)
    return train_cli(config, corpus, root / "exp", "r", "train.steps=2"), corpus


def gen(run, out, *args):
    res = run_cli("generate", "--ckpt", run, "--out", out, "--device", "cpu", "--seconds", "0.2", *args)
    assert res.exit_code == 0, res.output
    return json.loads((out / "settings.json").read_text())


def test_duplicate_seeds_are_an_error(tmp_path, trained):
    with pytest.raises(ValueError, match=r"name seed\(s\) \[2\] more than once"):
        parse_seeds("0-3,2")
    out = fail_cli("generate", "--ckpt", trained[0], "--seeds", "0-3,2", "--out", tmp_path / "g", "--device", "cpu")
    assert "more than once" in out and not (tmp_path / "g").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--steps", "4"], "--steps does not apply to --sampler fast"),
        (
            ["--sampler", "heun", "--eta", "0.5"],
            "--eta does not apply to --sampler heun (it takes --steps, --rho, --churn)",
        ),
        (["--sampler", "ddim", "--rho", "3"], "--rho does not apply to --sampler ddim (it takes --steps, --eta)"),
        (["--mels-from", "data"], "--mels-from applies to vocoders (task=vocoder); this model is task=waveform"),
        (["--device", "gpu"], "--device gpu: not a device name"),
    ],
)
def test_options_a_sampler_or_model_ignores_are_errors(tmp_path, trained, args, message):
    out = fail_cli("generate", "--ckpt", trained[0], "--seeds", "0", "--out", tmp_path / "g", *args)
    assert message in out, out
    assert not (tmp_path / "g").exists()


def test_batch_size_and_device_errors_blame_the_option(tmp_path, trained, monkeypatch):
    res = run_cli("generate", "--ckpt", trained[0], "--out", tmp_path / "g", "--batch-size", "0")
    assert res.exit_code == 2 and "Invalid value for '--batch-size': 0 is not in the range x>=1" in res.output
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = fail_cli("generate", "--ckpt", trained[0], "--out", tmp_path / "g", "--device", "cuda")
    assert "--device cuda: torch sees no CUDA GPU on this machine; use --device cpu" in out


def test_sampler_settings_are_applied_and_recorded(tmp_path, trained):
    settings = gen(trained[0], tmp_path / "g", "--seeds", "3", "--sampler", "ddim", "--steps", "4", "--eta", "0.5")
    assert settings["sampler"] == "ddim" and settings["sampler_settings"] == {"steps": 4, "eta": 0.5}
    fast = gen(trained[0], tmp_path / "f", "--seeds", "3")
    assert fast["steps"] == 6 and list(fast["sampler_settings"]) == ["fast_betas"]
    det = gen(trained[0], tmp_path / "d", "--seeds", "3", "--sampler", "ddim", "--steps", "4", "--eta", "0")
    import soundfile as sf

    assert not (sf.read(tmp_path / "g" / "3.wav")[0] == sf.read(tmp_path / "d" / "3.wav")[0]).all()
    assert det["sampler_settings"]["eta"] == 0


def test_sets_are_zero_padded_replaced_whole_and_scored_exactly(tmp_path, trained):
    run, corpus = trained
    out = tmp_path / "g"
    settings = gen(run, out, "--seeds", "8-10")
    assert settings["files"] == ["08.wav", "09.wav", "10.wav"] and settings["complete"] is True
    settings = gen(run, out, "--seeds", "9-10")  # the previous set is replaced, not mixed in
    assert settings["files"] == ["09.wav", "10.wav"]
    assert sorted(p.name for p in out.glob("*.wav")) == ["09.wav", "10.wav"]
    assert len(read_audio(corpus, out).gen_items) == 2
    (out / "extra.wav").write_bytes((out / "09.wav").read_bytes())  # copied in later: not in the set
    assert [p.split("/")[-1] for p in read_audio(corpus, out).gen_items] == ["09.wav", "10.wav"]
    msg = fail_cli("generate", "--ckpt", run, "--seeds", "0", "--out", out, "--device", "cpu", "--seconds", "0.2")
    assert "holds 1 files that are not a generated set's (extra.wav)" in msg
    assert (out / "extra.wav").is_file() and (out / "09.wav").is_file()


def test_an_interrupted_set_is_refused_by_evaluate_and_redone_by_generate(tmp_path, trained):
    run, corpus = trained
    out = tmp_path / "g"
    gen(run, out, "--seeds", "0-1")
    (out / "settings.json").write_text(json.dumps({"complete": False, "files": ["0.wav", "1.wav"], "pending": ["2"]}))
    (out / "2.wav").write_bytes((out / "0.wav").read_bytes())
    with pytest.raises(ValueError, match="generate did not finish this set"):
        read_audio(corpus, out)
    assert gen(run, out, "--seeds", "5")["files"] == ["5.wav"]
    assert sorted(p.name for p in out.glob("*.wav")) == ["5.wav"]


def test_evaluate_refuses_a_training_run_directory(trained):
    run, corpus = trained
    with pytest.raises(ValueError, match=r"is a training run directory .* e\.g\. .*r/generated"):
        read_audio(corpus, run)


@pytest.mark.parametrize("listing", [{"files": ["../victim.wav"]}, {"files": [], "pending": ["../victim"]}])
def test_a_listing_naming_files_outside_the_set_is_refused(tmp_path, listing):
    victim, out = tmp_path / "victim.wav", tmp_path / "g"
    victim.write_bytes(b"not the set's")
    out.mkdir()
    (out / "settings.json").write_text(json.dumps({"complete": False, "pending": ["0"], **listing}))
    entry = (listing["files"] or listing["pending"])[0]
    with pytest.raises(ValueError, match=f"settings.json: (files|pending) entry '{entry}' is not a relative name"):
        _remove_stale(claim_output(out, ["0"]), [], out, None)
    assert victim.read_bytes() == b"not the set's"


@pytest.mark.parametrize("name", ["/abs/0.wav", "sub/../0.wav", "link/0.wav"])
def test_absolute_dotdot_and_linked_out_names_are_refused(tmp_path, name):
    out = tmp_path / "g"
    out.mkdir()
    (out / "link").symlink_to(tmp_path)
    (out / "settings.json").write_text(json.dumps({"complete": True, "files": [name]}))
    with pytest.raises(ValueError, match=f"files entry '{name}' is not a relative name inside {out}"):
        read_set_listing(out)


def test_pending_files_are_matched_at_the_top_level_only(tmp_path):
    out = tmp_path / "g"
    (out / "keep").mkdir(parents=True)
    for name in ("keep/0.wav", "0.wav"):
        (out / name).write_bytes(b"x")
    (out / "settings.json").write_text(json.dumps({"complete": False, "files": [], "pending": ["0"]}))
    with pytest.raises(ValueError, match=r"holds 1 files that are not a generated set's \(keep/0.wav\)"):
        _remove_stale(claim_output(out, ["1"]), [], out, None)
    assert (out / "keep" / "0.wav").is_file() and (out / "0.wav").is_file()
    (out / "keep" / "0.wav").unlink()
    assert claim_output(out, ["1"]) == [out / "0.wav"]  # the interrupted run's own file


def test_griffin_lim_vocodes_the_mels_of_real_audio_as_an_evaluable_set(tmp_path, corpus):
    from audiodiff.audio.features import LogMel, mel_config
    from audiodiff.audio.io import load_audio
    from audiodiff.eval.context import run_context

    out = tmp_path / "gl"
    res = run_cli("griffin-lim", "--mels-from", corpus, "--out", out, "--iters", "32")
    assert res.exit_code == 0 and "wrote 6 files" in res.output, res.output
    settings = read_set_listing(out)
    assert settings["files"] == [f"utt{i}.wav" for i in range(6)] and settings["steps"] == 32
    assert run_context(out)["run"] == "griffin-lim" and run_context(out)["sampler"].startswith("griffin-lim, 32 steps")
    logmel = LogMel(mel_config("speech16k"))
    ref, got = load_audio(corpus.parent.parent / "wav" / "utt3.wav", 16000), load_audio(out / "utt3.wav", 16000)
    assert got.shape[0] == 4000 // 128 * 128  # whole hops, as a vocoder's input
    a, b = logmel.mel_magnitude(ref[None, : got.shape[0]]), logmel.mel_magnitude(got[None])
    assert float((a - b).norm() / a.norm()) < 0.2  # the mels come back (0.10; random phases alone give 0.62)
    first = got.clone()
    assert run_cli("griffin-lim", "--mels-from", corpus, "--out", out, "--iters", "32").exit_code == 0
    assert torch.equal(load_audio(out / "utt3.wav", 16000), first)  # same seed, same clip; the set is replaced
    evaluated = run_cli("evaluate", "--ref", corpus, "--gen", out, "--out", tmp_path / "ev", "--metrics", "mrstft,lsd")
    assert evaluated.exit_code == 0, evaluated.output
    assert "data source not found" in fail_cli("griffin-lim", "--mels-from", tmp_path / "no", "--out", tmp_path / "o2")
    assert "unknown mel preset 'x'" in fail_cli(
        "griffin-lim", "--mels-from", corpus, "--out", tmp_path / "o3", "--mel-preset", "x"
    )
    from tests.conftest import write_short_clip

    short = write_short_clip(tmp_path / "short")
    out = fail_cli("griffin-lim", "--mels-from", short.parent, "--out", tmp_path / "o4")
    assert f"{short}: 256 samples in whole hops of 128, shorter than one STFT frame" in out
    assert not (tmp_path / "o4").exists()  # every clip is checked before anything is written
