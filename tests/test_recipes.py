"""egs/*/run.sh: stage gating and option parsing, with a fake `audiodiff` that records its calls."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


LABELLED = ["digits", "sc09", "mnist", "checkerboard", "cifar10"]  # stage 2 trains an evaluation classifier


def run_recipe(tmp_path, *args, recipe="digits", script="run.sh", env_var=None):
    """Run a recipe script with faked commands; (the finished process, the commands' lines).
    `env_var`: each line ends with " [NAME=value]", the variable as the command saw it."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    calls = tmp_path / "calls.txt"
    seen = f" [{env_var}=${{{env_var}-unset}}]" if env_var else ""
    for name in ("audiodiff", "torchrun", "python"):  # python: the recipes' helper scripts
        (fake / name).write_text(
            f'#!/usr/bin/env bash\necho "{name} $*{seen}" >> {calls}\necho "output of {name} $1"\n'
        )
        (fake / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    done = subprocess.run(
        [
            "bash",
            str(ROOT / f"egs/{recipe}/{script}"),
            "--log_dir",
            str(tmp_path / "log"),
            "--data",
            str(tmp_path / "d"),
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    lines = calls.read_text().splitlines() if calls.exists() else []
    return done, lines


@pytest.mark.parametrize(
    "stages,expected",
    [
        (("1", "5"), ["prepare", "train-classifier", "train-classifier", "train", "generate", "evaluate"]),
        (
            ("1", "6"),
            ["prepare", "train-classifier", "train-classifier", "train", "generate", "evaluate"]
            + ["../../recipes/pretrained_demo.py"],
        ),
        (("6", "6"), ["../../recipes/pretrained_demo.py"]),
        (("3", "3"), ["train"]),
        (("3", "4"), ["train", "generate"]),
        (("4", "4"), ["generate"]),
    ],
)
def test_stage_gating_runs_exactly_the_chosen_stages(tmp_path, stages, expected):
    done, calls = run_recipe(tmp_path, "--stage", stages[0], "--stop_stage", stages[1])
    assert done.returncode == 0, done.stderr
    assert [c.split()[1] for c in calls] == expected
    assert list((tmp_path / "log").glob("run.*.log"))


def test_options_reach_the_commands_and_ngpu_uses_torchrun(tmp_path):
    done, calls = run_recipe(
        tmp_path, "--stage", "3", "--stop_stage", "3", "--tag", "amp7", "--ngpu", "2", "--conf", "conf/amp.yaml"
    )
    assert done.returncode == 0, done.stderr
    assert calls[0].startswith("torchrun --nproc_per_node 2 -m audiodiff.cli train conf/amp.yaml")
    assert "name=amp7" in calls[0]


@pytest.mark.parametrize("recipe", sorted(p.parent.name for p in ROOT.glob("egs/*/run.sh")))
def test_help_lists_every_option_with_its_default(tmp_path, recipe):
    done, calls = run_recipe(tmp_path, "--help", recipe=recipe)
    assert done.returncode == 0 and not calls and not (tmp_path / "log").exists()
    text = (ROOT / f"egs/{recipe}/run.sh").read_text()
    options = re.findall(r"^([a-z_0-9]+)=(\S*)", text.split("recipes/common.sh")[0], re.M)
    assert {"stage", "stop_stage", "tag", "conf", "train_args"} <= {name for name, _ in options}
    for name, default in options:
        assert re.search(rf"^  --{name} {re.escape(default)}(  #|$)", done.stdout, re.M), (name, done.stdout)


def test_train_resumes_passes_overrides_and_logs_commands_with_output(tmp_path):
    done, calls = run_recipe(
        tmp_path, "--stage", "3", "--stop_stage", "3", "--tag", "t", "--train_args", "train.steps=7 regularizer.lam=0"
    )
    assert done.returncode == 0, done.stderr
    args = calls[0].split()
    assert "--auto-resume" in args and "--force" not in args
    done, calls = run_recipe(tmp_path, "--stage", "3", "--stop_stage", "3", "--tag", "h", "--train_args", "--help")
    assert done.returncode == 0 and "--help" in calls[-1].split()  # a value, passed on, not the recipe's --help
    assert args[-2:] == ["train.steps=7", "regularizer.lam=0"]
    # one log per second of start: the two runs above write one or two files (glob's order is arbitrary)
    log = "".join(p.read_text() for p in sorted((tmp_path / "log").glob("run.*.log")))
    assert re.search(r"\$ audiodiff train conf/demo\.yaml --auto-resume .*name=t .*train\.steps=7", log)
    assert "output of audiodiff train" in log


def test_unknown_option_is_an_error(tmp_path):
    done, calls = run_recipe(tmp_path, "--stgae", "2")
    assert done.returncode == 2 and "unknown option --stgae" in done.stderr and not calls


@pytest.mark.parametrize("option", ["--stage", "--stop_stage", "--ngpu"])
def test_a_stage_that_is_not_a_number_is_an_error(tmp_path, option):
    done, calls = run_recipe(tmp_path, option, "abc")
    assert done.returncode == 2 and f"{option} must be a whole number, got 'abc'" in done.stderr and not calls


@pytest.mark.slow  # about a minute: every stage for real on a 3-speaker corpus
def test_digits_recipe_end_to_end_tiny(tmp_path):
    pytest.importorskip("espeakng_loader")
    import sys

    conf = tmp_path / "tiny.yaml"
    conf.write_text(
        f"defaults: [{ROOT / 'egs/digits/conf/demo.yaml'}]\n"
        "model: {diffwave: {layers: 4, channels: 16, cycle: 2}}\n"
        "train: {steps: 3, batch_size: 2, ckpt_every: 3, log_every: 1}\n"
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    cmd = [
        "bash",
        str(ROOT / "egs/digits/run.sh"),
        "--conf",
        str(conf),
        "--data",
        str(tmp_path / "data"),
        "--exp",
        str(tmp_path / "exp"),
        "--speakers",
        "3",
        "--seeds",
        "0-1",
        "--clf_epochs",
        "1",
        "--log_dir",
        str(tmp_path / "log"),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    gen = tmp_path / "exp" / "demo" / "generated"
    assert sorted(p.name for p in gen.iterdir()) == ["0.wav", "1.wav", "settings.json", "spectrograms.png"]
    report = json.loads((tmp_path / "exp" / "demo" / "eval" / "metrics.json").read_text())
    assert report["n_gen"] == 2 and report["metrics"]["fad_ge2e"] >= 0 and "kad_ge2e" in report["metrics"]
    assert report["metrics"]["inception_score"] >= 1 and report["classifier"]["labels"][:2] == ["0", "1"]
    assert (tmp_path / "data" / "data" / "test" / "wav.scp").is_file()
    # re-running the train stage continues the run, it never deletes it
    ckpts = tmp_path / "exp" / "demo" / "checkpoints"
    first = (ckpts / "ckpt-00000003.pt").read_bytes()
    again = [*cmd, "--stage", "3", "--stop_stage", "3", "--train_args", "train.steps=4 train.ckpt_every=4"]
    done = subprocess.run(again, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (ckpts / "ckpt-00000003.pt").read_bytes() == first and (ckpts / "latest").read_text() == "ckpt-00000004.pt"
    assert (tmp_path / "exp" / "demo" / "generated" / "0.wav").is_file()


@pytest.mark.parametrize("conf", sorted(ROOT.glob("egs/*/conf/*.yaml")), ids=lambda p: f"{p.parts[-3]}/{p.name}")
def test_every_recipe_config_resolves(conf):
    from audiodiff.config import load_config

    cfg = load_config(conf, ["name=x", "data.train=/d"])
    assert cfg.train.steps > 0
    if cfg.task == "image" and cfg.diffusion.kind == "ddpm" and cfg.diffusion.schedule == "ddpm":
        # eps models on the 1000-step schedule saturate unless x0_hat is clamped (docs/results.md)
        assert cfg.sample.clip_denoised, f"{conf}: set sample.clip_denoised for a DDPM image model"


def test_asterisk_edm_config_is_the_baseline_but_for_the_formulation_and_its_sampler():
    from omegaconf import OmegaConf

    from audiodiff.config import load_config

    asdict = OmegaConf.to_container

    base, edm = (
        load_config(ROOT / f"egs/asterisk_en/conf/{n}.yaml", ["name=x", "data.train=/d"]) for n in ("baseline", "edm")
    )
    assert asdict(edm.data) == asdict(base.data) and asdict(edm.train) == asdict(base.train) and edm.task == "vocoder"
    net, base_net = asdict(edm.model.diffwave), asdict(base.model.diffwave)
    assert net.pop("embed_interp") == "exact" and base_net.pop("embed_interp") == "lerp" and net == base_net
    d = edm.diffusion
    assert (d.kind, d.sigma_data, d.p_mean, d.p_std, d.sigma_min, d.sigma_max) == ("edm", 0.15, -2.4, 1.2, 0.002, 10.0)
    assert (edm.sample.sampler, edm.sample.steps) == ("heun", 18) and edm.regularizer.lam == 0


def test_asterisk_edm_embed_config_is_the_edm_config_with_edms_embedding_frequencies():
    from omegaconf import OmegaConf

    from audiodiff.card import _network
    from audiodiff.config import load_config

    edm, embed = (
        load_config(ROOT / f"egs/asterisk_en/conf/{n}.yaml", ["name=x", "data.train=/d"]) for n in ("edm", "edm_embed")
    )
    new, old = OmegaConf.to_container(embed), OmegaConf.to_container(edm)
    assert (
        new["model"]["diffwave"].pop("embed_freqs") == "edm"
        and old["model"]["diffwave"].pop("embed_freqs") == "diffwave"
    )
    assert new == old and embed.model.diffwave.embed_interp == "exact"
    assert _network(embed).endswith(", step embedding on EDM's frequencies") and "EDM" not in _network(edm)


@pytest.mark.parametrize(
    "recipe,expected",
    [
        ("sc09", ["train-classifier", "train", "generate", "evaluate"]),
        ("ljspeech", ["train", "generate", "evaluate"]),
        ("mnist", ["train-classifier", "train", "generate", "evaluate"]),
        ("checkerboard", ["train-classifier", "train", "generate", "evaluate"]),
        ("cifar10", ["train-classifier", "train", "generate", "evaluate"]),
    ],
)
def test_other_recipes_gate_their_stages(tmp_path, recipe, expected):
    fake = tmp_path / "bin"
    fake.mkdir()
    calls = tmp_path / "calls.txt"
    (fake / "audiodiff").write_text(f'#!/usr/bin/env bash\necho "audiodiff $*" >> {calls}\n')
    (fake / "audiodiff").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    cmd = [
        "bash",
        str(ROOT / f"egs/{recipe}/run.sh"),
        "--stage",
        "2",
        "--stop_stage",
        "5",
        "--log_dir",
        str(tmp_path / "log"),
        "--data",
        str(tmp_path / "d"),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert [c.split()[1] for c in calls.read_text().splitlines()] == expected


@pytest.mark.parametrize("recipe", LABELLED)
def test_classifier_stage_keeps_an_existing_classifier(tmp_path, recipe):
    """Stage 2 trains the classifier once; digits also trains one at 8 kHz (its shipped mel model's rate)."""
    folders = ["classifier", "classifier8k"] if recipe == "digits" else ["classifier"]
    done, calls = run_recipe(tmp_path, "--stage", "2", "--stop_stage", "2", recipe=recipe)
    assert done.returncode == 0 and [c.split()[1] for c in calls] == ["train-classifier"] * len(folders)
    for call, folder in zip(calls, folders):
        assert "--epochs 20" in call and f"--out {tmp_path / 'd'}/{folder} " in f"{call} "
    assert [("--sample-rate 8000" in c) for c in calls] == [f == "classifier8k" for f in folders]
    for folder in folders:
        (tmp_path / "d" / folder).mkdir(parents=True)
        (tmp_path / "d" / folder / "classifier.json").write_text("{}")
    (tmp_path / "calls.txt").unlink()
    done, calls = run_recipe(tmp_path, "--stage", "2", "--stop_stage", "2", recipe=recipe)
    assert done.returncode == 0 and calls == [] and "exists, kept" in done.stderr


def test_the_shared_shell_only_parses_options_and_logs():
    functions = re.findall(r"^(\w+)\(\)\s*\{", (ROOT / "recipes/common.sh").read_text(), re.M)
    assert sorted(functions) == ["log", "logged", "stage_enabled"]


@pytest.mark.parametrize("run_sh", sorted(ROOT.glob("egs/*/run.sh")), ids=lambda p: p.parent.name)
def test_every_stage_is_written_out_in_its_run_sh(run_sh):
    text = run_sh.read_text()
    last = int(re.search(r"^stop_stage=(\d+)\b", text, re.M).group(1))
    assert [int(n) for n in re.findall(r"^if stage_enabled (\d+); then$", text, re.M)] == list(range(1, last + 1))
    for n in range(1, last + 1):
        assert f'log "stage {n}: ' in text, f"{run_sh}: stage {n} logs what it does"


def test_recipe_yaml_files_are_grids_or_training_configs(tmp_path):
    import importlib.util

    from audiodiff.config import load_config

    spec = importlib.util.spec_from_file_location("ablate", ROOT / "recipes" / "ablate.py")
    ablate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ablate)
    top = sorted(ROOT.glob("egs/*/*.yaml"))
    assert top and all(re.fullmatch(r"grid(_\w+)?\.yaml", p.name) for p in top), top
    for path in top:  # each grid loads, and its base config is a training config
        grid = ablate.load_grid(path)
        assert grid["config"].parent.name == "conf"
        assert load_config(grid["config"], ["name=x", f"data.train={grid['train_data']}"]).train.steps > 0
    with pytest.raises(SystemExit, match="not an ablation grid"):
        ablate.load_grid(ROOT / "egs/digits/conf/ablation.yaml")


def test_asterisk_recipe_runs_griffin_lim_beside_the_vocoder_and_keeps_what_is_made(tmp_path):
    exp = tmp_path / "e"
    done, calls = run_recipe(tmp_path, "--exp", str(exp), recipe="asterisk_en")
    assert done.returncode == 0, done.stderr
    expected = ["prepare", "griffin-lim", "evaluate", "train", "generate", "evaluate", "report"]
    assert [c.split()[1] for c in calls] == expected
    assert calls[0].endswith("archive=") and f"--mels-from {tmp_path}/d/data/test " in calls[1]
    assert f"--gen {exp}/griffin_lim/generated" in calls[2] and "--metrics mrstft,lsd,pesq,fad,kad" in calls[2]
    assert "--auto-resume" in calls[3] and "--sampler fast" in calls[4]
    assert calls[6].split()[2:4] == [f"{exp}/griffin_lim/eval", f"{exp}/baseline/eval"]
    # prepared data and the Griffin-Lim row are kept; a chosen test set reaches every stage that reads it
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "asterisk_en.json").write_text("{}")
    for sub in ("generated/settings.json", "eval/metrics.json"):
        (exp / "griffin_lim" / sub).parent.mkdir(parents=True, exist_ok=True)
        (exp / "griffin_lim" / sub).write_text("{}")
    (tmp_path / "calls.txt").unlink()
    done, calls = run_recipe(tmp_path, "--exp", str(exp), "--test_set", "t3", recipe="asterisk_en")
    assert done.returncode == 0 and [c.split()[1] for c in calls] == expected[3:]
    assert done.stderr.count("kept") == 3 and "--mels-from t3 " in calls[1] and "--ref t3 " in calls[2]


def test_asterisk_curves_make_the_fixed_subset_then_train_and_score_both_runs(tmp_path, monkeypatch):
    listed = (ROOT / "egs/asterisk_en/conf/curve8.txt").read_text().split()
    test = tmp_path / "d" / "data" / "test"
    test.mkdir(parents=True)
    ids = sorted([*listed, "beeperr", f"{listed[0]}-2"])  # not listed: left out, also when an id extends one
    (test / "wav.scp").write_text("".join(f"{u} /w/{u}.wav\n" for u in ids))
    (test / "utt2spk").write_text("".join(f"{u} allison\n" for u in ids))
    exp, subset = tmp_path / "e", tmp_path / "c8"
    curve = dict(recipe="asterisk_en", script="curve.sh")
    done, calls = run_recipe(tmp_path, "--exp", str(exp), "--curve_set", str(subset), "--minutes", "9", **curve)
    assert done.returncode == 0, done.stderr
    assert len(listed) == 8 and sorted(line.split()[0] for line in (subset / "wav.scp").open()) == sorted(listed)
    assert (subset / "utt2spk").read_text().count("allison") == 8
    assert [" ".join(c.split()[:3]) for c in calls] == [
        f"audiodiff validate-data-dir {subset}",
        "audiodiff train conf/baseline.yaml",
        "python local/lmnt_train.py train",
        f"python ../../recipes/learning_curve.py {exp}/baseline_curve",
        "python local/lmnt_train.py curve",
    ]
    assert "train.max_minutes=9" in calls[1] and "--minutes 9 " in calls[2] and "--ckpt_every 500" in calls[2]
    assert "train.ckpt_every=500" in calls[1] and f"--mels-from {subset} --sampler fast" in calls[3]
    assert calls[4].endswith(f"--compare {exp}/baseline_curve/curve/curve.json")
    # both trainings on one thread (lmnt_train.py sets it itself; ours used torch's default: all cores)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    done, calls = run_recipe(tmp_path, "--stage", "2", "--stop_stage", "3", env_var="OMP_NUM_THREADS", **curve)
    assert done.returncode == 0 and [c.split()[:2] + c.split()[-1:] for c in calls[-2:]] == [
        ["audiodiff", "train", "[OMP_NUM_THREADS=1]"],
        ["python", "local/lmnt_train.py", "[OMP_NUM_THREADS=1]"],
    ]
    # the EDM run: its config trains, stage 4 samples it with Heun (the DDPM runs keep --sampler fast)
    edm = ["--conf", "conf/edm.yaml", "--tag", "edm_curve", "--sampler", "heun", "--exp", str(exp)]
    done, calls = run_recipe(tmp_path, "--stage", "2", "--stop_stage", "4", *edm, **curve)
    assert done.returncode == 0, done.stderr
    assert calls[-3].startswith("audiodiff train conf/edm.yaml ") and f"name=edm_curve exp_dir={exp} " in calls[-3]
    assert calls[-1].startswith(f"python ../../recipes/learning_curve.py {exp}/edm_curve ")
    assert "--mels-from data/curve8 --sampler heun --evaluate" in calls[-1]
    (test / "wav.scp").write_text("beeperr /w/beeperr.wav\n")  # a test split without the listed prompts
    done, _ = run_recipe(tmp_path, "--curve_set", str(subset), "--stop_stage", "1", **curve)
    assert done.returncode != 0 and "lacks prompts of conf/curve8.txt" in done.stderr


def test_asterisk_gpu_slice_caps_training_and_passes_its_options_on(tmp_path):
    gpu = dict(recipe="asterisk_en", script="gpu.sh")
    done, calls = run_recipe(tmp_path, "--minutes", "3", "--archive", "a.deb", "--exp", str(tmp_path / "e"), **gpu)
    assert done.returncode == 0, done.stderr
    assert [c.split()[1] for c in calls] == [
        "prepare",
        "griffin-lim",
        "evaluate",
        "train",
        "generate",
        "evaluate",
        "report",
    ]
    assert calls[0].endswith("archive=a.deb") and "train conf/gpu.yaml --auto-resume" in calls[3]
    assert calls[3].split()[-1] == "train.max_minutes=3" and "name=gpu_base" in calls[3]
    done, _ = run_recipe(tmp_path, "--help", **gpu)
    assert done.returncode == 0 and "  --minutes 8  # training time of this slice" in done.stdout
