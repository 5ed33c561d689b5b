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


def test_a_generated_image_set_is_exactly_the_files_its_listing_names(tmp_path):
    iref, igen = fixed_image_sets(tmp_path)  # 0.png .. 11.png
    listed = [f"{i}.png" for i in range(10)]  # the set: ten of them; 10.png, 11.png are another run's leftovers
    (igen / "settings.json").write_text(json.dumps({"complete": True, "files": listed}))
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(igen / "spectrograms.png")  # an overview, same shape
    sets = read_images(iref, igen)
    expected = np.stack([np.asarray(Image.open(igen / name))[None] for name in listed])
    assert sets.gen_items.shape == (10, 1, 16, 16) and np.array_equal(sets.gen_items, expected)
    report = evaluate(iref, igen, tmp_path / "e", metrics=["pixel_histogram"])
    assert report["n_gen"] == 10
    (igen / "settings.json").write_text(json.dumps({"complete": True, "files": [*listed, "0.wav"]}))
    with pytest.raises(ValueError, match=r"lists PNG images and other files \(0.wav\); not an image set"):
        read_images(iref, igen)
    (igen / "settings.json").write_text(json.dumps({"complete": True, "files": [*listed, "12.png"]}))
    with pytest.raises(FileNotFoundError, match=r"1 listed images are missing \(12.png"):
        read_images(iref, igen)
