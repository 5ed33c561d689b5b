"""Our embedders against their reference implementations, both given the same random weights.

The references install from the package index without weights (torchvggish, panns-inference,
encodec, transformers; see the Makefile). Each test skips, saying which package, when it is
missing. The weights go from the reference model's state dict through a checkpoint file and our
loader, so the name mapping is exercised too; the waveform goes through both front ends.
"""

import importlib
import importlib.util
import sys
import types

import numpy as np
import pytest
import soundfile as sf
import torch

from audiodiff.audio.io import load_audio
from audiodiff.eval.embeddings import build_embedder


def _close(ours, ref, rtol=1e-5):
    """Equal to float rounding: every element within rtol of the reference's largest magnitude."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    assert ours.shape == ref.shape
    scale = np.abs(ref).max()
    assert scale > 0
    np.testing.assert_allclose(ours, ref, rtol=0, atol=rtol * scale)


def _import_skipping_init(package: str, module: str, stub: tuple[str, ...] = ()):
    """`package.module` without running `package/__init__.py`; `stub` names modules to fake while importing.

    panns_inference's __init__ downloads a label file at import; encodec's imports torchaudio, which
    only its file I/O helpers use (and which does not import beside our torch).
    """
    spec = importlib.util.find_spec(package)
    if spec is None:
        pytest.skip(f"reference package {package!r} is not installed (test dependency, see the Makefile)")
    ours = [k for k in sys.modules if k == package or k.startswith(package + ".")]
    saved = {k: sys.modules.pop(k) for k in [*ours, *stub] if k in sys.modules}
    pkg = types.ModuleType(package)
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules.update({package: pkg, **{name: types.ModuleType(name) for name in stub}})
    try:
        return importlib.import_module(f"{package}.{module}")
    finally:
        for k in [k for k in sys.modules if k in stub or k == package or k.startswith(package + ".")]:
            del sys.modules[k]
        sys.modules.update(saved)


def _randomise_norms(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial batch-norm statistics and affine terms (the defaults make BN an identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.2)


def test_vggish_equals_torchvggish_on_the_same_waveform(tmp_path):
    pytest.importorskip("resampy", reason="torchvggish needs resampy")
    tv = pytest.importorskip("torchvggish", reason="reference package 'torchvggish' is not installed")
    ref = tv.torchvggish.VGG(tv.torchvggish.make_layers(), postprocess=False).eval()
    torch.save(ref.state_dict(), tmp_path / "vggish.pth")
    emb = build_embedder("vggish", weights=tmp_path / "vggish.pth")
    ref.embeddings = ref.embeddings[:-1]  # torchvggish 0.2 keeps the ReLU that TF's VGGish dropped
    wavs = [torch.randn(16000 * 2 + 700, dtype=torch.float64) * 0.1, torch.randn(16000, dtype=torch.float64) * 0.3]
    with torch.no_grad():
        refs = []
        for w in wavs:
            examples = tv.waveform_to_examples(w.numpy(), 16000)  # framing, STFT, log-mel, 0.96 s examples
            _close(emb.examples(w), examples)
            refs.append(ref(examples).mean(0).numpy())
    _close(emb(wavs), np.stack(refs))

    # Off 16 kHz, we resample with soxr when reading a file, torchvggish with resampy: the two
    # agree to float rounding in the pass band and differ only in the top mel bands (7.1-7.5 kHz).
    sr = 22050
    t = np.arange(int(sr * 1.5)) / sr
    x = sum(0.2 / k * np.sin(2 * np.pi * 220 * k * t) for k in range(1, 30)).astype(np.float32)
    sf.write(tmp_path / "a.wav", x, sr, subtype="FLOAT")
    ours = emb.examples(load_audio(tmp_path / "a.wav", 16000))
    diff = (ours - tv.waveform_to_examples(x.astype(np.float64), sr)).abs().amax(dim=(0, 1, 2))  # per band
    assert diff[:58].max() < 1e-3 and diff.max() < 0.2, diff


def test_pann_cnn14_equals_panns_inference_on_the_same_waveform(tmp_path):
    models = _import_skipping_init("panns_inference", "models")
    ref = models.Cnn14(16000, 512, 160, 64, 50, 8000, 527).eval()
    _randomise_norms(ref, 1)
    torch.save({"model": ref.state_dict(), "iteration": 0}, tmp_path / "Cnn14_16k.pth")
    emb = build_embedder("pann", weights=tmp_path / "Cnn14_16k.pth")  # also checks torchlibrosa's melW
    wavs = [torch.randn(16000) * 0.1, torch.randn(27000) * 0.3]
    with torch.no_grad():
        ref_logmel = ref.logmel_extractor(ref.spectrogram_extractor(wavs[0][None]))  # (1, 1, frames, 64)
        refs = np.concatenate([ref(w[None])["embedding"].numpy() for w in wavs])
    _close(emb.logmel(wavs[0])[None], ref_logmel)
    _close(emb(wavs), refs)


def test_encodec_encoder_equals_the_encodec_package(tmp_path):
    model = _import_skipping_init("encodec", "model", stub=("torchaudio",))
    ref = model.EncodecModel.encodec_model_24khz(pretrained=False).eval()
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.endswith("weight_g"):  # weight_g = |weight_v| at init: make the norm matter
                p.mul_(torch.rand(p.shape, generator=g) + 0.5)
    torch.save(ref.state_dict(), tmp_path / "encodec.th")  # the whole codec, as the released file
    emb = build_embedder("encodec", weights=tmp_path / "encodec.th")
    with torch.no_grad():
        for n in (24000, 24001, 1000, 100):  # whole frames, a remainder, inputs shorter than the padding
            x = torch.randn(1, 1, n) * 0.1
            _close(emb.net(x), ref.encoder(x))
        wavs = [torch.randn(12000) * 0.1, torch.randn(5000) * 0.1]
        refs = np.stack([ref.encoder(w[None, None])[0].mean(-1).numpy() for w in wavs])
    _close(emb(wavs), refs)


def _tiny_clap(path):
    """A random ClapModel small enough to build in a second, saved as a Hub folder would be."""
    transformers = pytest.importorskip("transformers", reason="reference package 'transformers' is not installed")
    text = dict(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=1, intermediate_size=32)
    audio = dict(patch_embeds_hidden_size=8, depths=[1, 1, 1, 1], num_attention_heads=[1, 1, 1, 1], hidden_size=64)
    config = transformers.ClapConfig(text_config=text, audio_config=audio, projection_dim=16)
    torch.manual_seed(3)
    model = transformers.ClapModel(config).eval()
    model.save_pretrained(path)
    # laion/clap-htsat-unfused's preprocessor_config.json: 50 Hz - 14 kHz, rand_trunc, repeatpad
    features = transformers.ClapFeatureExtractor(frequency_min=50, truncation="rand_trunc", padding="repeatpad")
    features.save_pretrained(path)
    return model, features


def _get_audio_features(model, features, clips) -> np.ndarray:
    """transformers' own CLAP audio embedding of each clip (a tensor in 4.x, a ModelOutput in 5.x)."""
    inputs = features([c.numpy() for c in clips], sampling_rate=48000, return_tensors="pt")
    with torch.no_grad():
        out = model.get_audio_features(**inputs)
    return (out if isinstance(out, torch.Tensor) else out.pooler_output).numpy()


def test_clap_equals_transformers_get_audio_features(tmp_path):
    model, features = _tiny_clap(tmp_path / "clap")
    emb = build_embedder("clap", weights=tmp_path / "clap")
    wavs = [torch.randn(48000) * 0.1, torch.randn(30000) * 0.3]
    got = emb(wavs)
    _close(got, _get_audio_features(model, features, wavs))
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)


def test_clap_long_clip_is_the_mean_over_10s_windows_not_a_random_crop(tmp_path):
    model, features = _tiny_clap(tmp_path / "clap")
    emb = build_embedder("clap", weights=tmp_path / "clap")
    wav = torch.randn(48000 * 12) * 0.1  # 12 s: windows 0-10 s and 2-12 s
    got = emb([wav])
    np.testing.assert_array_equal(emb([wav]), got)  # the extractor's rand_trunc would crop at random
    ref = _get_audio_features(model, features, [wav[:480000], wav[-480000:]]).mean(0, keepdims=True)
    _close(got, ref)
    assert [len(w) for w in emb.windows(torch.zeros(48000 * 20))] == [480000, 480000]  # exact multiple
