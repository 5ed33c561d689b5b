"""The lmnt-com/diffwave import against their own model (the `diffwave` package) with shared random weights."""

import numpy as np
import pytest
import torch

from audiodiff.models.lmnt import load_lmnt_checkpoint


def _their_model_and_checkpoint(path, layers=7, channels=8, cycle=3, n_mels=16):
    """Their DiffWave with random weights, saved as their learner saves it (DiffWaveLearner.state_dict)."""
    model_mod = pytest.importorskip("diffwave.model", reason="reference package 'diffwave' is not installed")
    from diffwave.params import AttrDict

    params = AttrDict(
        residual_layers=layers,
        residual_channels=channels,
        dilation_cycle_length=cycle,
        n_mels=n_mels,
        hop_samples=256,
        noise_schedule=np.linspace(1e-4, 0.05, 50).tolist(),
    )
    torch.manual_seed(4)
    ref = model_mod.DiffWave(params).eval()
    with torch.no_grad():
        ref.output_projection.weight.normal_(0, 0.5)  # zero at init: the output would not depend on anything
        for m in ref.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.ConvTranspose2d)) and m.bias is not None:
                m.bias.normal_(0, 0.1)
    opt = torch.optim.Adam(ref.parameters())
    torch.save({"step": 1234, "model": ref.state_dict(), "optimizer": opt.state_dict(), "params": dict(params)}, path)
    return ref


def test_lmnt_import_equals_their_model_for_integer_and_fractional_steps(tmp_path):
    ref = _their_model_and_checkpoint(tmp_path / "weights-1234.pt")
    ours, info = load_lmnt_checkpoint(tmp_path / "weights-1234.pt")
    assert info["step"] == 1234 and ours.config.cycle == 3  # the cycle comes from their params
    ours.eval()
    mel = torch.randn(2, 16, 3)
    audio = torch.randn(2, 3 * 256)
    with torch.no_grad():
        steps = torch.tensor([0, 37])  # their table lookup
        ref_out = ref(audio, mel, steps)
        _assert_equal(ours(audio[:, None], steps.float(), mel), ref_out)
        # fractional steps (the fast inference schedule) interpolate between table rows; their
        # interpolation broadcasts only for a single step, so one example at a time
        for i, t in enumerate((12.6, 0.25)):
            ref_out = ref(audio[i : i + 1], mel[i : i + 1], torch.tensor([t]))
            _assert_equal(ours(audio[i : i + 1, None], torch.tensor([t]), mel[i : i + 1]), ref_out)


def _assert_equal(ours, ref):
    assert ours.shape == ref.shape and ref.abs().max() > 0.1
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5 * ref.abs().max().item())
