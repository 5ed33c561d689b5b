"""Properties every loss in the registry must have, audio and image shaped."""

import pytest
import torch

from audiodiff.losses import LOSSES, build_loss
from tests.losses.signals import hard_cases, speechlike

AUDIO_ONLY = {"stft", "mrstft", "mel"}
SMALL = {"stft": {"n_fft": 256, "hop": 64}, "mel": {"n_fft": 256, "hop": 64, "n_mels": 20, "sample_rate": 8000}}


def make(name):
    return build_loss(name, **SMALL.get(name, {}))


def shapes(name):
    out = [(3, 1, 2048), (2, 2, 1999)]
    if name not in AUDIO_ONLY:
        out += [(3, 1, 32, 40), (2, 3, 17, 31)]
    return out


CASES = [(n, s) for n in LOSSES for s in shapes(n)]


@pytest.mark.parametrize("name,shape", CASES)
def test_zero_on_identical_input_and_shape_b(name, shape):
    x = torch.randn(shape)
    out = make(name)(x, x.clone())
    assert out.shape == (shape[0],)
    torch.testing.assert_close(out, torch.zeros(shape[0]), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name,shape", CASES)
def test_positive_and_per_example_independent(name, shape):
    loss = make(name)
    x, y = torch.randn(shape), torch.randn(shape)
    base = loss(x, y)
    assert (base > 0).all()
    y2 = y.clone()
    y2[1] = y2[1] * 0.5 + 0.1
    moved = loss(x, y2)
    assert not torch.isclose(moved[1], base[1])
    keep = [i for i in range(shape[0]) if i != 1]
    torch.testing.assert_close(moved[keep], base[keep])


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("case", ["silence", "dc", "clipped"])
def test_finite_gradients_on_hard_inputs(name, case):
    loss = make(name)
    target = hard_cases(2, 1, 2048)[case]
    for pred in (torch.randn(2, 1, 2048) * 0.1, target.clone(), torch.zeros(2, 1, 2048)):
        pred = pred.requires_grad_(True)
        out = loss(pred, target).sum()
        (grad,) = torch.autograd.grad(out, pred)
        assert torch.isfinite(out) and torch.isfinite(grad).all(), (case, name)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradient_reaches_prediction(name):
    target = speechlike(4096)[None, None]
    pred = (target + 0.05 * torch.randn_like(target)).requires_grad_(True)
    make(name)(pred, target).sum().backward()
    assert pred.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_computed_in_float32(name, dtype):
    loss = make(name)
    x, y = torch.randn(2, 1, 2048), torch.randn(2, 1, 2048)
    xh, yh = x.to(dtype), y.to(dtype)
    out = loss(xh, yh)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, loss(xh.float(), yh.float()))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_float64_follows_input(name):
    x, y = torch.randn(2, 1, 2048, dtype=torch.float64), torch.randn(2, 1, 2048, dtype=torch.float64)
    out = make(name)(x, y)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out.float(), make(name)(x.float(), y.float()), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", sorted(AUDIO_ONLY))
def test_audio_only_losses_reject_images(name):
    with pytest.raises(ValueError, match=r"\(B, C, T\) audio"):
        make(name)(torch.randn(2, 1, 16, 16), torch.randn(2, 1, 16, 16))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_shape_mismatch_and_rank_errors(name):
    with pytest.raises(ValueError, match="same shape"):
        make(name)(torch.randn(2, 1, 2048), torch.randn(2, 1, 2000))
    with pytest.raises(ValueError, match="expected"):
        make(name)(torch.randn(2, 2048), torch.randn(2, 2048))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_traces_without_graph_breaks(name):
    # torch.compile(fullgraph=True) works (checked with inductor on CUDA in tests/test_cuda.py).
    loss = make(name)
    x, y = torch.randn(2, 1, 2048, requires_grad=True), torch.randn(2, 1, 2048)
    explanation = torch._dynamo.explain(lambda a, b: loss(a, b).sum())(x, y)
    torch._dynamo.reset()
    assert explanation.graph_break_count == 0, explanation.break_reasons
