"""Published-weight embedders: name/shape mapping from state dicts built here, front ends, offline errors."""

import math

import numpy as np
import pytest
import torch

from audiodiff.eval import pretrained
from audiodiff.eval.embeddings import build_embedder


def _randomised(shapes: dict[str, tuple]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = {}
    for k, shape in shapes.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(10)
        elif k.endswith("running_var"):
            out[k] = torch.rand(shape, generator=g) + 0.5
        else:
            out[k] = torch.randn(shape, generator=g) * 0.05
    return out


def _bn(prefix: str, c: int) -> dict[str, tuple]:
    keys = ("weight", "bias", "running_mean", "running_var")
    return {**{f"{prefix}.{k}": (c,) for k in keys}, f"{prefix}.num_batches_tracked": ()}


# torchvggish's VGG: features = Conv/ReLU/MaxPool stack, embeddings = 3 Linear layers.
VGGISH = {
    **{f"features.{i}.weight": (o, c, 3, 3) for i, o, c in ((0, 64, 1), (3, 128, 64), (6, 256, 128), (8, 256, 256),
                                                            (11, 512, 256), (13, 512, 512))},
    **{f"features.{i}.bias": (o,) for i, o in ((0, 64), (3, 128), (6, 256), (8, 256), (11, 512), (13, 512))},
    "embeddings.0.weight": (4096, 12288), "embeddings.0.bias": (4096,),
    "embeddings.2.weight": (4096, 4096), "embeddings.2.bias": (4096,),
    "embeddings.4.weight": (128, 4096), "embeddings.4.bias": (128,),
}  # fmt: skip


def test_vggish_receives_torchvggish_names_and_embeds_per_file(tmp_path):
    path = tmp_path / "vggish.pth"
    torch.save(_randomised(VGGISH), path)
    emb = build_embedder("vggish", weights=path)
    assert emb.examples(torch.zeros(16000 * 2)).shape == (2, 1, 96, 64)  # 198 frames -> 2 examples of 0.96 s
    wavs = [torch.randn(16000) * 0.1, torch.randn(40000) * 0.1, torch.randn(300) * 0.1]
    out = emb(wavs)
    assert out.shape == (3, 128) and np.isfinite(out).all()
    assert np.allclose(emb(wavs[:1]), out[:1], atol=1e-5)


def test_vggish_mel_matrix_is_htk_triangles_in_mel_space():
    m = pretrained.vggish_mel_matrix().numpy()
    assert m.shape == (257, 64) and (m[0] == 0).all() and m.max() <= 1
    hz = np.linspace(0, 8000, 257)
    mel = 1127 * np.log(1 + hz / 700)
    centres = np.linspace(1127 * math.log(1 + 125 / 700), 1127 * math.log(1 + 7500 / 700), 66)[1:-1]
    assert (np.abs(mel[m.argmax(0)] - centres) <= np.diff(mel).max()).all()  # each band peaks at its centre


def _cnn14_shapes():
    shapes = {**_bn("bn0", 64), "fc1.weight": (2048, 2048), "fc1.bias": (2048,)}
    shapes.update({"fc_audioset.weight": (527, 2048), "fc_audioset.bias": (527,)})
    widths = (1, 64, 128, 256, 512, 1024, 2048)
    for i in range(6):
        b = f"conv_block{i + 1}"
        shapes[f"{b}.conv1.weight"] = (widths[i + 1], widths[i], 3, 3)
        shapes[f"{b}.conv2.weight"] = (widths[i + 1], widths[i + 1], 3, 3)
        shapes.update({**_bn(f"{b}.bn1", widths[i + 1]), **_bn(f"{b}.bn2", widths[i + 1])})
    return shapes


def test_pann_cnn14_loads_the_audioset_checkpoint_layout(tmp_path):
    import librosa

    state = _randomised(_cnn14_shapes())
    state["spectrogram_extractor.stft.conv_real.weight"] = torch.randn(257, 1, 512)
    state["spectrogram_extractor.stft.conv_imag.weight"] = torch.randn(257, 1, 512)
    mel_w = librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=50, fmax=8000).T
    state["logmel_extractor.melW"] = torch.from_numpy(mel_w)
    path = tmp_path / "Cnn14_16k.pth"
    torch.save({"model": state, "iteration": 1}, path)
    emb = build_embedder("pann", weights=path)
    out = emb([torch.randn(16000) * 0.1, torch.randn(4000) * 0.1])
    assert out.shape == (2, 2048) and np.isfinite(out).all() and (out >= 0).all()
    state["logmel_extractor.melW"] = torch.from_numpy(mel_w * 2)
    torch.save({"model": state}, path)
    with pytest.raises(ValueError, match="another mel filterbank"):
        build_embedder("pann", weights=path)


def _encodec_shapes():
    shapes = {}

    def conv(name, c_in, c_out, k):
        shapes.update({f"{name}.conv.conv.weight_g": (c_out, 1, 1), f"{name}.conv.conv.weight_v": (c_out, c_in, k),
                       f"{name}.conv.conv.bias": (c_out,)})  # fmt: skip

    conv("encoder.model.0", 1, 32, 7)
    dim = 32
    for i, r in zip((1, 4, 7, 10), (2, 4, 5, 8)):
        conv(f"encoder.model.{i}.block.1", dim, dim // 2, 3)
        conv(f"encoder.model.{i}.block.3", dim // 2, dim, 1)
        conv(f"encoder.model.{i}.shortcut", dim, dim, 1)
        conv(f"encoder.model.{i + 2}", dim, dim * 2, 2 * r)
        dim *= 2
    for layer in (0, 1):
        for kind in ("ih", "hh"):
            shapes[f"encoder.model.13.lstm.weight_{kind}_l{layer}"] = (2048, 512)
            shapes[f"encoder.model.13.lstm.bias_{kind}_l{layer}"] = (2048,)
    conv("encoder.model.15", 512, 128, 7)
    shapes["decoder.model.0.conv.conv.bias"] = (512,)  # the rest of the codec is ignored
    shapes["quantizer.vq.layers.0._codebook.embed"] = (1024, 128)
    return shapes


def test_encodec_encoder_takes_the_24khz_checkpoint_and_gives_75_hz_frames(tmp_path):
    path = tmp_path / "encodec.th"
    torch.save(_randomised(_encodec_shapes()), path)
    emb = build_embedder("encodec", weights=path)
    for n in (24000, 24001, 1000, 100):  # ceil(T / 320) latent frames, even for inputs shorter than a kernel
        assert emb.net(torch.randn(1, 1, n) * 0.1).shape == (1, 128, math.ceil(n / 320))
    out = emb([torch.randn(24000) * 0.1, torch.randn(12000) * 0.1])
    assert out.shape == (2, 128) and np.isfinite(out).all()


def test_weight_norm_conv_equals_a_plain_conv_with_the_normalised_weight():
    conv = pretrained._WNConv1d(3, 4, 5)
    with torch.no_grad():
        conv.weight_g.copy_(torch.tensor([1.0, 2.0, 0.5, 3.0])[:, None, None])
    x = torch.randn(2, 3, 50)
    v = conv.weight_v
    w = conv.weight_g * v / v.norm(dim=(1, 2), keepdim=True)
    assert torch.allclose(conv(x), torch.nn.functional.conv1d(x, w, conv.bias), atol=1e-6)


@pytest.mark.parametrize("name,file", [("vggish", "vggish-10086976.pth"), ("pann", "Cnn14_16k_mAP=0.438.pth"),
                                       ("encodec", "encodec_24khz-d7cc33bc.th")])  # fmt: skip
def test_offline_without_weights_fails_with_one_line_naming_file_and_place(tmp_path, monkeypatch, name, file):
    monkeypatch.setenv("AUDIODIFF_WEIGHTS", str(tmp_path / "w"))
    cls = {"vggish": pretrained.VGGishEmbedder, "pann": pretrained.PANNEmbedder, "encodec": pretrained.EncodecEmbedder}
    monkeypatch.setattr(cls[name], "URL", "http://127.0.0.1:9/" + file)
    with pytest.raises(FileNotFoundError) as err:
        build_embedder(name)
    msg = str(err.value)
    assert "\n" not in msg and file in msg and str(tmp_path / "w") in msg and "--embedder-weights" in msg
    assert not list((tmp_path / "w").glob("*"))  # no partial file left behind
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_embedder(name, weights=tmp_path / "nope.pth")


def test_cli_evaluate_with_missing_weights_is_one_line(tmp_path, monkeypatch, corpus):
    from click.testing import CliRunner

    from audiodiff.cli import main

    monkeypatch.setenv("AUDIODIFF_WEIGHTS", str(tmp_path / "w"))
    monkeypatch.setattr(pretrained.VGGishEmbedder, "URL", "http://127.0.0.1:9/vggish-10086976.pth")
    args = ["evaluate", "--ref", corpus, "--gen", corpus, "--out", tmp_path / "e", "--embedder", "vggish"]
    res = CliRunner().invoke(main, [str(a) for a in [*args, "--cache", tmp_path / "c"]])
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "vggish-10086976.pth" in lines[0]


def test_a_published_embedder_without_a_network_fails_when_built():
    from audiodiff.eval.weights import Published

    class NoNetwork(Published):
        name = "none"

    with pytest.raises(TypeError, match="network"):
        NoNetwork(weights="unused.pt")  # refused at construction, before any file is looked for
