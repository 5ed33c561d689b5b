"""The evaluation classifier and its scores (classifier-FID, IS, mIS, AM)."""

import math

import numpy as np
import pytest

from audiodiff.eval.classifier import am_score, inception_score, load_classifier, modified_inception_score


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
