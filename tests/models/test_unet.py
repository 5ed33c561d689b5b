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


def test_label_dropout_adds_a_null_row_and_drops_labels_at_its_rate_reproducibly():
    net = small(num_classes=10, label_dropout=0.25)
    assert net.label.num_embeddings == 11 and net.null_label == 10
    plain = small(num_classes=10)
    assert plain.label.num_embeddings == 10 and plain.null_label is None and small().null_label is None
    seen = []
    net.label.register_forward_hook(lambda module, args, out: seen.append(args[0].clone()))
    x, noise, labels = torch.randn(800, 1, 4, 4), torch.zeros(800), torch.arange(800) % 10
    for _ in range(2):  # train mode: dropped from the global RNG, so a seed repeats the draw
        torch.manual_seed(3)
        net(x, noise, labels)
    torch.manual_seed(4)
    net(x, noise, labels)
    net.eval()
    net(x, noise, labels)
    first, again, other, evaluated = seen
    dropped = first == 10
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert 0.20 < dropped.float().mean() < 0.30  # 800 draws at p = 0.25: std 0.015
    assert torch.equal(first[~dropped], labels[~dropped]) and torch.equal(evaluated, labels)


def test_label_dropout_needs_classes_and_a_rate_below_one():
    with pytest.raises(ValueError, match=r"label_dropout=0.1 must be in \[0, 1\) and needs num_classes > 0"):
        small(label_dropout=0.1)
    with pytest.raises(ValueError, match=r"label_dropout=1.0 must be in \[0, 1\)"):
        small(num_classes=3, label_dropout=1.0)
