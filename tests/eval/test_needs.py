"""Needs are resolved once per evaluation, however many metrics share them."""

import json
from collections import Counter

import pytest

from audiodiff.eval import embeddings
from audiodiff.eval.evaluate import evaluate
from audiodiff.eval.needs import NEEDS
from audiodiff.eval.registry import metric_names
from tests.eval.conftest import AUDIO_CLASSIFIER, fixed_audio_sets, fixed_image_sets, random_classifier


@pytest.fixture
def counted(monkeypatch):
    """Count the resolutions of every need and the runs of `embed_files` (an embedder over one set)."""
    calls = Counter()

    def counting(key, fn):
        def wrapped(*args, **kwargs):
            calls[key] += 1
            return fn(*args, **kwargs)

        return wrapped

    for kind, needs in NEEDS.items():
        for name, fn in needs.items():
            monkeypatch.setitem(needs, name, counting(f"{kind}.{name}", fn))
    monkeypatch.setattr(embeddings, "embed_files", counting("embed_files", embeddings.embed_files))
    return calls


def test_every_audio_need_is_resolved_once_for_all_metrics(tmp_path, counted):
    pytest.importorskip("pesq")
    ref, gen = fixed_audio_sets(tmp_path)
    flat = {"sample_rate": 16000, "freqs_hz": list(range(8001)), "psd": [1e-6] * 8001}
    (ref / "analytic_psd.json").write_text(json.dumps(flat))  # band_psd's need: the reference's exact spectrum
    clf = random_classifier(tmp_path / "clf", **AUDIO_CLASSIFIER)
    evaluate(ref, gen, tmp_path / "e", metric_names("audio"), "melstats", tmp_path / "c", classifier=clf)
    assert {k: v for k, v in counted.items() if k.startswith("audio.")} == {f"audio.{n}": 1 for n in NEEDS["audio"]}
    assert counted["embed_files"] == 4  # the embedder and the classifier, each over ref and gen once


def test_every_image_need_is_resolved_once_for_all_metrics(tmp_path, counted):
    ref, gen = fixed_image_sets(tmp_path)
    clf = random_classifier(tmp_path / "clf", kind="images", image_shape=[1, 16, 16])
    asked = [m for m in metric_names("images") if m != "inception_fid"]  # its weights are not here offline
    evaluate(ref, gen, tmp_path / "e", asked, classifier=clf)
    assert {k: v for k, v in counted.items() if k.startswith("images.")} == {f"images.{n}": 1 for n in NEEDS["images"]}


def test_needs_of_metrics_not_asked_for_are_not_resolved(tmp_path, counted):
    ref, gen = fixed_audio_sets(tmp_path)
    evaluate(ref, gen, tmp_path / "e", ["lsd"])
    assert set(counted) == {"audio.paired_audio", "audio.pairs"}  # no embedder ran
