"""FAD as the field names it, a results CSV across runs, per-file scores, progress bars, the floor (issue 17)."""

import csv
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from audiodiff.cli import main
from audiodiff.eval.embeddings import ABOUT
from audiodiff.eval.evaluate import evaluate
from audiodiff.eval.fad import frechet_distance, gaussian_stats
from audiodiff.eval.results import CSV_COLUMNS, append_csv, per_file_scores
from tests.conftest import write_corpus


@pytest.fixture
def sets(tmp_path):
    return write_corpus(tmp_path / "a", n=5), write_corpus(tmp_path / "b", n=4, seconds=0.3)


def _cli(*args):
    return CliRunner().invoke(main, ["evaluate", *map(str, args)])


def test_embedding_scores_carry_their_embedder_and_say_what_it_measures(tmp_path, sets):
    ref, gen = sets
    out = tmp_path / "e"
    res = _cli("--ref", ref, "--gen", gen, "--out", out, "--embedder", "melstats", "--cache", tmp_path / "c")
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "metrics.json").read_text())
    assert list(rep["metrics"])[:4] == ["fad_melstats", "fad_inf_melstats", "kad_melstats", "ndb_k_melstats"]
    assert "fad" not in rep["metrics"] and rep["embedder"]["about"] == ABOUT["melstats"]
    assert f"embedder melstats: {ABOUT['melstats']}" in res.output and "fad_melstats" in res.output
    assert f"embedder: melstats ({ABOUT['melstats']})" in (out / "metrics.md").read_text().splitlines()[0]
    assert "speaker embedding" in ABOUT["ge2e"]  # what a GE2E FAD measures: voices


def test_csv_gets_one_row_per_evaluation_under_one_header(tmp_path, sets):
    ref, gen = sets
    table = tmp_path / "results.csv"
    kw = dict(embedder="melstats", cache_dir=tmp_path / "c", csv=table)
    evaluate(ref, gen, tmp_path / "e1", metrics=["fad"], **kw)
    evaluate(ref, ref, tmp_path / "e2", metrics=["fad"], **kw)
    rows = list(csv.DictReader(table.open()))
    assert table.read_text().count("date,gen,ref") == 1 and len(rows) == 2
    assert [r["gen"] for r in rows] == [str(gen), str(ref)] and rows[0]["embedder"] == "melstats"
    assert float(rows[1]["fad_melstats"]) == pytest.approx(0.0, abs=1e-6) and float(rows[0]["fad_melstats"]) > 0
    evaluate(ref, gen, tmp_path / "e3", metrics=["fad", "kad"], **kw)  # a new column: rewritten, rows kept
    header = table.read_text().splitlines()[0].split(",")
    assert header == [*CSV_COLUMNS, "fad_melstats", "kad_melstats"]
    rows = list(csv.DictReader(table.open()))
    assert [r["kad_melstats"] for r in rows[:2]] == ["", ""] and np.isfinite(float(rows[2]["kad_melstats"]))


def test_csv_refuses_a_file_that_is_not_a_results_table(tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not an evaluate results table"):
        append_csv(other, dict.fromkeys(CSV_COLUMNS, "x"))
    assert other.read_text() == "a,b\n1,2\n"
    res = _cli("--ref", tmp_path, "--gen", tmp_path, "--out", tmp_path / "e", "--csv", tmp_path / "no" / "r.csv")
    assert res.exit_code == 1 and "folder" in res.output and "does not exist" in res.output


def test_per_file_scores_are_fadtk_point_distances_and_find_a_copied_clip(tmp_path, sets):
    rng = np.random.default_rng(0)
    ref_e, gen_e = rng.normal(size=(30, 4)), rng.normal(size=(5, 4)) * 3
    got = per_file_scores(ref_e, gen_e)
    mu, cov = gaussian_stats(ref_e)
    expected = [frechet_distance(mu, cov, x, np.zeros((4, 4))) for x in gen_e]  # the clip as a point mass
    assert got["fad_point"] == pytest.approx(expected, rel=1e-9)
    ref, gen = sets
    folder = gen.parent.parent / "wav"  # the generated clips, and a copy of a reference clip among them
    shutil.copy(ref.parent.parent / "wav" / "utt2.wav", folder / "copy.wav")
    evaluate(ref, folder, tmp_path / "e", metrics=["fad"], embedder="melstats", per_file=True)
    rows = list(csv.DictReader((tmp_path / "e" / "per_file.csv").open()))
    assert len(rows) == 5 and list(rows[0]) == ["file", "fad_point_melstats", "nearest_ref", "nearest_ref_distance"]
    scores = [float(r["fad_point_melstats"]) for r in rows]
    assert scores == sorted(scores, reverse=True)  # the farthest first: the clips to listen to
    copy = next(r for r in rows if r["file"] == "copy.wav")
    assert copy["nearest_ref"] == "utt2.wav" and float(copy["nearest_ref_distance"]) == pytest.approx(0, abs=1e-4)
    with pytest.raises(ValueError, match="--per-file"):
        evaluate(tmp_path, tmp_path, tmp_path / "x", kind="images", per_file=True)


def test_progress_bars_on_request_and_off_without_a_terminal(tmp_path, sets):
    ref, gen = sets
    args = ["--ref", ref, "--gen", gen, "--metrics", "fad", "--embedder", "melstats"]
    res = _cli(*args, "--out", tmp_path / "e1", "--progress")
    assert res.exit_code == 0 and "embed (melstats)" in res.stderr
    res = _cli(*args, "--out", tmp_path / "e2")  # CliRunner's stderr is not a terminal
    assert res.exit_code == 0 and "embed (melstats)" not in res.stderr


def test_floor_of_a_real_vs_real_evaluation_is_recorded_and_tabled(tmp_path, sets):
    ref, gen = sets
    kw = dict(metrics=["fad", "mean_spectrum"], embedder="melstats")
    floor = evaluate(ref, ref, tmp_path / "floor", **kw)["metrics"]
    rep = evaluate(ref, gen, tmp_path / "e", floor=tmp_path / "floor", **kw)
    assert rep["floor"]["metrics"] == floor and rep["floor"]["source"] == str(tmp_path / "floor" / "metrics.json")
    md = (tmp_path / "e" / "metrics.md").read_text()
    assert "| metric | value | better | real-data floor |" in md
    assert (
        f"| fad_melstats | {rep['metrics']['fad_melstats']:.4g} | lower is better | {floor['fad_melstats']:.4g} |" in md
    )
    with pytest.raises(FileNotFoundError, match="--floor .*no metrics.json"):
        evaluate(ref, gen, tmp_path / "e2", floor=tmp_path / "nowhere", **kw)


def test_a_floor_written_before_the_rename_is_read_with_todays_names(tmp_path):
    from audiodiff.eval.context import read_floor

    (tmp_path / "metrics.json").write_text(json.dumps({"metrics": {"fad": 0.18, "am_score": 0.7},
                                                       "embedder": {"name": "ge2e"}}))  # fmt: skip
    assert read_floor(tmp_path)["metrics"] == {"fad_ge2e": 0.18, "am_score": 0.7}


def test_python_m_audiodiff_cli_offers_the_new_options():
    """recipes/ablate.py runs `python -m audiodiff.cli evaluate`: the command lives in cli_eval."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "audiodiff.cli", "evaluate", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and all(o in done.stdout for o in ("--csv", "--per-file", "--floor", "--progress"))
