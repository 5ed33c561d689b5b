"""Set kinds: detected from the reference or stated, each set read once."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from audiodiff.cli import main
from audiodiff.eval.evaluate import evaluate
from audiodiff.eval.sets import KINDS, detect_kind, read_images
from tests.eval.conftest import fixed_audio_sets, fixed_image_sets


def test_kind_is_detected_from_the_reference(tmp_path):
    ref, _ = fixed_audio_sets(tmp_path)
    iref, igen = fixed_image_sets(tmp_path)
    assert detect_kind(ref) == "audio" and detect_kind(iref) == "images"
    assert detect_kind(igen) == "audio"  # a folder of PNGs: say --kind images


def test_stated_kind_evaluates_a_png_folder_as_reference(tmp_path):
    iref, igen = fixed_image_sets(tmp_path)
    out = tmp_path / "e"
    res = CliRunner().invoke(main, ["evaluate", "--ref", str(igen), "--gen", str(igen), "--out", str(out),
                                    "--kind", "images"])  # fmt: skip
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "metrics.json").read_text())
    assert rep["kind"] == "images" and rep["n_ref"] == 12 and rep["metrics"]["pixel_histogram_tv"] == 0
    res = CliRunner().invoke(main, ["evaluate", "--ref", str(igen), "--gen", str(igen), "--out", str(out)])
    assert res.exit_code == 1 and "has no audio files" in res.output  # detected as audio: says why
    with pytest.raises(ValueError, match=r"unknown set kind 'video'; choose from \['audio', 'images'\]"):
        evaluate(iref, igen, out, kind="video")


def test_image_sets_of_different_shapes_are_refused(tmp_path):
    iref, _ = fixed_image_sets(tmp_path)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(wrong / "0.png")
    with pytest.raises(ValueError, match=r"image shapes differ: reference \(1, 16, 16\) vs generated \(1, 8, 8\)"):
        read_images(iref, wrong)


def test_audio_head_records_skipped_files_and_the_metrics_asked_for(tmp_path):
    ref, gen = fixed_audio_sets(tmp_path)
    (gen / "bad.wav").write_bytes(b"")
    sets = KINDS["audio"].read(ref, gen, "skip")
    head = KINDS["audio"].head(sets, ["fad"])
    assert list(head) == ["ref", "gen", "n_ref", "n_gen", "metrics", "skipped_audio", "settings"]
    assert (
        head["n_gen"] == 5
        and list(head["skipped_audio"]["gen"]) == ["bad"]
        and head["settings"] == {"metrics": ["fad"]}
    )
