import pytest
import torch

from audiodiff.models import UNet, UNetConfig


def small(**kw):
    return UNet(UNetConfig(channels=16, channel_mult=(1, 2, 2), num_res_blocks=1, attn_levels=(1,), **kw))


def randomize(model):
    torch.nn.init.normal_(model.conv_out.weight, std=0.1)
    for m in model.modules():
        if hasattr(m, "conv2"):
            torch.nn.init.normal_(m.conv2.weight, std=0.05)
    return model


@pytest.mark.parametrize("shape", [(2, 1, 80, 62), (2, 1, 32, 32), (2, 1, 17, 9)])
def test_mels_any_size(shape):
    net = randomize(small())
    out = net(torch.randn(shape), torch.tensor([3.0, 700.0]))
    assert out.shape == shape and torch.isfinite(out).all()


def test_images_with_labels_and_fourier_embedding():
    net = randomize(small(in_channels=3, num_classes=10, embedding="fourier"))
    x = torch.randn(2, 3, 28, 28)
    a = net(x, torch.tensor([-1.0, 0.5]), torch.tensor([1, 2]))
    assert a.shape == x.shape
    assert not torch.allclose(a, net(x, torch.tensor([-1.0, 0.5]), torch.tensor([3, 2])))
    assert not torch.allclose(a, net(x, torch.tensor([0.0, 0.5]), torch.tensor([1, 2])))
    with pytest.raises(ValueError, match="needs class labels"):
        net(x, torch.tensor([0.0, 0.0]))
    with pytest.raises(ValueError, match=r"expects \(B, 3, H, W\)"):
        net(torch.randn(2, 1, 28, 28), torch.tensor([0.0, 0.0]), torch.tensor([1, 2]))


def test_output_starts_at_zero_and_examples_do_not_mix():
    net = small()
    x = torch.randn(3, 1, 16, 24)
    assert torch.equal(net(x, torch.tensor([1.0, 2.0, 3.0])), torch.zeros_like(x))
    randomize(net)
    full = net(x, torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(net(x[1:2], torch.tensor([2.0])), full[1:2], rtol=1e-4, atol=1e-5)


def test_bad_config():
    with pytest.raises(ValueError, match="attn_levels"):
        UNet(UNetConfig(attn_levels=(5,)))
    with pytest.raises(ValueError, match="embedding='sinusoid'"):
        UNet(UNetConfig(embedding="sinusoid"))


def test_traces_without_graph_breaks():
    net = small(num_classes=10)
    explanation = torch._dynamo.explain(net)(torch.randn(2, 1, 20, 30), torch.tensor([1.0, 2.0]), torch.tensor([1, 2]))
    torch._dynamo.reset()
    assert explanation.graph_break_count == 0, explanation.break_reasons
