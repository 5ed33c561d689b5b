"""The evaluation classifier and its scores (classifier-FID, IS, mIS, AM)."""

import hashlib
import math

import numpy as np
import pytest
import safetensors.torch
import torch

from audiodiff.eval.classifier import (
    Classifier,
    ClassifierConfig,
    am_score,
    inception_score,
    load_classifier,
    modified_inception_score,
    save_classifier,
)


def _kl(p, q):
    return float((p * (np.log(p) - np.log(q))).sum())


def test_inception_score_is_class_count_for_confident_balanced_and_one_for_constant():
    k = 5
    confident = np.full((k * 4, k), 1e-9)
    confident[np.arange(k * 4), np.arange(k * 4) % k] = 1
    assert inception_score(confident) == pytest.approx(k, rel=1e-6)
    same = np.tile([0.7, 0.2, 0.1], (10, 1))
    assert inception_score(same) == pytest.approx(1.0, abs=1e-12)


def test_modified_inception_score_matches_brute_force_over_distinct_pairs():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4) * 0.5, size=7)
    pc = np.clip(p, 1e-12, 1)
    pairs = [_kl(pc[i], pc[j]) for i in range(7) for j in range(7) if i != j]
    assert modified_inception_score(p) == pytest.approx(math.exp(np.mean(pairs)), rel=1e-10)
    assert modified_inception_score(np.tile(p[0], (5, 1))) == pytest.approx(1.0, abs=1e-12)


def test_am_score_zero_when_confident_with_the_reference_class_mix_and_grows_otherwise():
    k = 4
    onehot = np.full((8, k), 1e-12)
    onehot[np.arange(8), np.arange(8) % k] = 1
    assert am_score(onehot, onehot) == pytest.approx(0.0, abs=1e-9)
    uniform = np.full((8, k), 1 / k)
    assert am_score(onehot, uniform) == pytest.approx(math.log(k), rel=1e-9)  # entropy term only
    collapsed = np.tile(onehot[0], (8, 1))  # confident but one class: the KL term is large
    assert am_score(onehot, collapsed) > 5


def test_missing_classifier_files_fail_with_the_command_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="classifier.safetensors.*train-classifier"):
        load_classifier(tmp_path)


def test_the_recorded_weights_sha1_is_of_the_weights_loaded_even_when_the_file_is_replaced_meanwhile(
    tmp_path, monkeypatch
):
    """load_classifier read classifier.safetensors twice (load_file, then its sha1): a classifier saved over it
    in between (a retrain beside a running evaluate) gave the old weights under the new file's sha1, the hash
    metrics.json records and the grid archive's restore checks. It reads the bytes once, hashes and loads them."""
    config = ClassifierConfig(kind="images", labels=["a", "b"], image_shape=[1, 4, 4], channels=[2], feature_dim=2)
    torch.manual_seed(0)
    root = save_classifier(Classifier(config), tmp_path / "clf", {})
    first = (root / "classifier.safetensors").read_bytes()
    torch.manual_seed(1)
    other = Classifier(config)

    def replaced_after(load):  # the file is replaced once the weights are read
        def wrapper(*args, **kwargs):
            state = load(*args, **kwargs)
            save_classifier(other, root, {})
            return state

        return wrapper

    monkeypatch.setattr(safetensors.torch, "load_file", replaced_after(safetensors.torch.load_file))
    monkeypatch.setattr(safetensors.torch, "load", replaced_after(safetensors.torch.load))
    model, meta = load_classifier(root)
    assert (root / "classifier.safetensors").read_bytes() != first  # replaced while loading
    loaded = {k: v.contiguous() for k, v in model.state_dict().items()}
    assert safetensors.torch.save(loaded) == first  # the model holds the first weights ...
    assert meta["weights_sha1"] == hashlib.sha1(first).hexdigest()  # ... and the sha1 names them
