"""train.fast_cpu: resolved by the CPU's bf16 support, recorded resolved, and its loss tracks float32."""

import torch
from click.testing import CliRunner

from audiodiff.checkpoint import load_checkpoint
from audiodiff.cli import main
from audiodiff.config import from_yaml
from audiodiff.fastcpu import cpu_flags, resolve_fast_cpu
from tests.conftest import TINY

CPU = torch.device("cpu")


def test_auto_is_on_only_with_amx_bf16():
    assert resolve_fast_cpu("auto", CPU, {"avx2", "amx_bf16", "amx_tile"})[0] == "on"
    # avx512_bf16 without AMX: bf16 measured 6-17% slower than float32 (bench/results/training__xeon_bf16_1t.md)
    state, note = resolve_fast_cpu("auto", CPU, {"avx2", "avx512f", "avx512_bf16"})
    assert state == "off" and "native bf16 (avx512_bf16), no AMX" in note
    note = "train.fast_cpu=on: this CPU has native bf16 (avx512_bf16)"
    assert resolve_fast_cpu("on", CPU, {"avx512_bf16"}) == ("on", note)
    state, note = resolve_fast_cpu("auto", CPU, {"avx2", "avx512f", "avx512_vnni"})  # AVX-512 without bf16
    assert state == "off" and "no native bf16" in note
    state, note = resolve_fast_cpu("on", CPU, {"avx2"})
    assert state == "on" and note.startswith("warning:") and "emulated" in note
    assert resolve_fast_cpu("off", CPU, {"avx512_bf16"})[0] == "off"


def test_gpu_runs_ignore_the_switch():
    state, note = resolve_fast_cpu("on", torch.device("cuda", 0), {"avx512_bf16"})
    assert state == "off" and "ignored on cuda" in note


def test_bad_setting_and_flags_file(tmp_path):
    try:
        resolve_fast_cpu("yes", CPU, set())
    except ValueError as err:
        assert "train.fast_cpu='yes' is not allowed" in str(err)
    else:
        raise AssertionError("accepted 'yes'")
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nflags\t\t: fpu sse avx512_bf16\n")
    assert cpu_flags(tmp_path / "cpuinfo") == {"fpu", "sse", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == set()


def _train(tmp_path, corpus, name, fast):
    conf = tmp_path / "conf.yaml"
    conf.write_text("diffusion:\n  schedule: diffwave\n  loss_type: l1\n")
    args = [f"name={name}", f"exp_dir={tmp_path / 'exp'}", f"data.train={corpus}", *TINY]
    args += ["train.steps=6", "train.ckpt_every=6", f"train.fast_cpu={fast}"]
    res = CliRunner().invoke(main, ["train", str(conf), "--no-progress", *args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    run = tmp_path / "exp" / name
    losses = [float(line.split("loss=")[1].split()[0]) for line in (run / "log.txt").read_text().splitlines()
              if line.startswith("step ")]  # fmt: skip
    return run, losses


def test_fast_path_loss_tracks_float32_and_is_recorded(tmp_path, corpus):
    ref_run, ref = _train(tmp_path, corpus, "fp32", "off")
    run, fast = _train(tmp_path, corpus, "fast", "on")
    assert len(ref) == len(fast) == 6
    for a, b in zip(ref, fast):  # same data, noise and init: bf16 rounding only
        assert abs(a - b) <= 0.05 * abs(a), (ref, fast)
    state, ref_state = load_checkpoint(run), load_checkpoint(ref_run)
    moved = {k: (state["model"][k] - ref_state["model"][k]).abs().max().item() for k in state["model"]}
    assert max(moved.values()) > 0  # the switch did change the arithmetic ...
    assert max(moved.values()) < 1e-3  # ... by bf16 rounding of 6 AdamW steps of lr 2e-4, not more
    assert from_yaml(state["config"]).train.fast_cpu == "on"
    assert from_yaml((ref_run / "config.yaml").read_text()).train.fast_cpu == "off"
    assert all(v.dtype == torch.float32 for v in state["model"].values() if v.is_floating_point())
    exp_avg = [s["exp_avg"] for s in state["optimizer"]["state"].values()]
    assert exp_avg and all(v.dtype == torch.float32 for v in exp_avg)  # fp32 master weights and Adam state
    assert "train.fast_cpu=on" in (run / "log.txt").read_text()


def test_config_reads_on_off_despite_yaml_booleans(tmp_path):
    from audiodiff.config import ConfigError, load_config

    (tmp_path / "c.yaml").write_text("train: {fast_cpu: off}\n")  # YAML 1.1: off is False
    assert load_config(tmp_path / "c.yaml", ["name=x", "data.train=/d"]).train.fast_cpu == "off"
    assert load_config(tmp_path / "c.yaml", ["name=x", "data.train=/d", "train.fast_cpu=on"]).train.fast_cpu == "on"
    try:
        load_config(tmp_path / "c.yaml", ["name=x", "data.train=/d", "train.fast_cpu=fast"])
    except ConfigError as err:
        assert "train.fast_cpu='fast' is not allowed; choose one of ['auto', 'on', 'off']" in str(err)
    else:
        raise AssertionError("accepted fast_cpu=fast")


def test_resuming_on_a_cpu_with_other_bf16_support_is_not_a_config_change(tmp_path, corpus, monkeypatch):
    """train.fast_cpu=auto resolves per machine: a resume where it resolves otherwise continues (and says so)."""
    import audiodiff.fastcpu

    monkeypatch.setattr(audiodiff.fastcpu, "cpu_flags", lambda path=None: {"avx2"})  # whatever this box has
    run, _ = _train(tmp_path, corpus, "moved", "auto")
    assert from_yaml((run / "config.yaml").read_text()).train.fast_cpu == "off"
    monkeypatch.setattr(audiodiff.fastcpu, "cpu_flags", lambda path=None: {"amx_bf16"})
    conf = tmp_path / "conf.yaml"
    args = ["name=moved", f"exp_dir={tmp_path / 'exp'}", f"data.train={corpus}", *TINY, "train.steps=7"]
    res = CliRunner().invoke(main, ["train", str(conf), "--resume", "--no-progress", *args])
    assert res.exit_code == 0, res.output
    assert load_checkpoint(run)["step"] == 7
    assert "train.fast_cpu: 'off' -> 'on'" in (run / "log.txt").read_text()
