"""The metric registry: names and choices per set kind, one-line errors, a new metric in a few lines."""

import json

import pytest
from click.testing import CliRunner

from audiodiff.cli import main
from audiodiff.eval import registry
from audiodiff.eval.evaluate import evaluate
from audiodiff.eval.needs import NEEDS
from audiodiff.eval.registry import METRICS, Metric, Scores, check_metrics, metric_names
from audiodiff.eval.sets import KINDS
from tests.eval.conftest import fixed_audio_sets, fixed_image_sets


def test_every_metric_applies_to_some_kind_and_every_default_is_a_metric_of_its_kind():
    kinds = {name: [k for k in KINDS if registry.applies(name, k)] for name in METRICS}
    assert all(kinds.values()), kinds
    assert kinds["classifier"] == ["audio", "images"] and kinds["fad"] == ["audio"]
    assert kinds["inception_fid"] == ["images"] and kinds["mrstft"] == ["audio"]
    for kind in KINDS.values():
        assert set(kind.defaults) <= set(metric_names(kind.name))
    assert set(NEEDS) == set(KINDS)


def test_cli_help_lists_each_kinds_metrics_from_the_registry(monkeypatch):
    res = CliRunner().invoke(main, ["evaluate", "--help"], terminal_width=400)
    text = " ".join(res.output.split())
    for kind in KINDS:
        assert f"{kind}: {', '.join(metric_names(kind))}" in text
    assert "--kind [audio|images]" in text


@pytest.mark.parametrize(
    ("asked", "kind", "message"),
    [
        (["fad", "is"], "audio", "unknown metric(s) ['is']; for audio choose from ['fad', 'fad_inf'"),
        (["inception_fid"], "audio", "metric(s) ['inception_fid'] do not apply to audio sets; choose from ['fad'"),
        (["fad", "power_spectrum"], "images", "metric(s) ['fad'] do not apply to images sets; choose from"),
    ],
)
def test_unknown_or_inapplicable_metrics_are_one_line_errors(asked, kind, message):
    with pytest.raises(ValueError) as info:
        check_metrics(asked, kind)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_cli_refuses_an_image_metric_on_audio_instead_of_writing_no_metrics(tmp_path):
    ref, gen = fixed_audio_sets(tmp_path)
    args = ["evaluate", "--ref", str(ref), "--gen", str(gen), "--out", str(tmp_path / "e"), "--metrics"]
    res = CliRunner().invoke(main, [*args, "inception_fid"])
    assert res.exit_code == 1 and "['inception_fid'] do not apply to audio sets" in res.output  # was: exit 0, {}
    assert not (tmp_path / "e" / "metrics.json").exists()
    iref, igen = fixed_image_sets(tmp_path)
    res = CliRunner().invoke(main, ["evaluate", "--ref", str(iref), "--gen", str(igen), "--out", str(tmp_path / "i"),
                                    "--metrics", "fad"])  # fmt: skip
    assert res.exit_code == 1 and "['fad'] do not apply to images sets" in res.output  # was: ignored


def test_a_new_metric_is_one_function_and_one_registry_entry(tmp_path, monkeypatch):
    def brightness(ctx):
        x = ctx.need("images")
        return Scores({"brightness_gap": float(abs(x.ref.mean() - x.gen.mean()))})

    monkeypatch.setitem(METRICS, "brightness", Metric(("images",), brightness))
    assert "brightness" in metric_names("images") and "brightness" not in metric_names("audio")
    ref, gen = fixed_image_sets(tmp_path)
    rep = evaluate(ref, gen, tmp_path / "e", ["pixel_histogram", "brightness"])
    from audiodiff.eval.images import load_images

    gap = abs(load_images(ref).mean() - load_images(gen).mean())
    assert list(rep["metrics"]) == ["pixel_histogram_tv", "brightness_gap"]
    assert rep["metrics"]["brightness_gap"] == pytest.approx(gap) and gap > 0
    assert "| brightness_gap |" in (tmp_path / "e" / "metrics.md").read_text()
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["metrics"] == rep["metrics"]
