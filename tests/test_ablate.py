"""recipes/ablate.py: the grid expands to the right cells and the report aggregates over seeds."""

import hashlib
import importlib.util
import json
import math
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]
spec = importlib.util.spec_from_file_location("ablate", ROOT / "recipes" / "ablate.py")
ablate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ablate)


def _grid(tmp_path):
    (tmp_path / "base.yaml").write_text("train: {steps: 7, batch_size: 3}\n")
    (tmp_path / "amp.yaml").write_text("regularizer: {lam: 1.0, losses: [{name: amp}]}\n")
    grid = {
        "config": "base.yaml",
        "train_data": "data/train",
        "ref": "data/test",
        "out": "exp/abl",
        "seeds": [0, 1],
        "report": ["metrics.fad"],
        "variants": [{"name": "baseline"}, {"name": "amp", "loss": "amp.yaml", "lams": [0.1, 0.01]}],
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    return ablate.load_grid(path)


def test_cells_compose_base_loss_lambda_and_seed(tmp_path):
    from audiodiff.config import load_config

    grid = _grid(tmp_path)
    cells = ablate.cells(grid)
    assert [(c["group"], c["seed"]) for c in cells] == [
        ("baseline", 0),
        ("amp_lam0.1", 0),
        ("amp_lam0.01", 0),
        ("baseline", 1),
        ("amp_lam0.1", 1),
        ("amp_lam0.01", 1),
    ]  # fmt: skip  (seed-major)
    cell = cells[5]
    cell["run"].mkdir(parents=True)
    (cell["run"] / "run.yaml").write_text(cell["config"])
    cfg = load_config(cell["run"] / "run.yaml", ["name=x", "data.train=/d"])
    assert cfg.regularizer.lam == 0.01 and cfg.regularizer.losses[0].name == "amp"
    assert cfg.train.seed == 1 and cfg.train.steps == 7


def test_report_gives_mean_and_spread_over_seeds(tmp_path):
    grid = _grid(tmp_path)
    cells = ablate.cells(grid)
    for c, fad in zip(cells, [1.0, 2.0, 5.0, 3.0, 2.0, None]):  # seed 0 of each group, then seed 1
        if fad is None:
            continue  # an unfinished run is left out, not counted as zero
        (c["run"] / "eval").mkdir(parents=True)
        (c["run"] / "eval" / "metrics.json").write_text(json.dumps({"metrics": {"fad": fad}}))
        (c["run"] / "config.yaml").write_text("train: {steps: 7, batch_size: 3}\n")
        (c["run"] / "timing.json").write_text(json.dumps({"train_s": 10.0}))
    res = ablate.report(grid, cells)
    rows = {r["group"]: r for r in res["rows"]}
    assert rows["baseline"]["metrics.fad"]["mean"] == 2.0
    assert rows["baseline"]["metrics.fad"]["std"] == pytest.approx(2**0.5)
    assert rows["amp_lam0.1"]["metrics.fad"]["std"] == 0.0  # two seeds that agree: a measured zero spread
    assert rows["amp_lam0.01"]["seeds"] == [0] and rows["amp_lam0.01"]["metrics.fad"]["std"] is None  # undefined
    assert json.loads((grid["out"] / "results.json").read_text())["rows"][2]["metrics.fad"]["std"] is None
    assert res["steps"] == 7 and res["batch_size"] == 3
    md = (grid["out"] / "results.md").read_text()
    assert "| amp | 0.1 | 2 | 2 +- 0 | 10 |" in md and "| baseline | - | 2 |" in md
    assert "| amp | 0.01 | 1 | 5 (1 seed) | 10 |" in md  # not "5 +- 0": one seed has no spread


def test_a_metric_missing_from_some_cells_says_over_how_many_seeds_and_one_seed_draws_no_error_bar(
    tmp_path, monkeypatch
):
    """The seeds column counts cells with any metrics.json; a metric one of them lacks is averaged over fewer,
    which the cell says. A std of one value is undefined: no error bar in results.png (a NaN yerr)."""
    import matplotlib.axes

    _grid(tmp_path)
    grid = ablate.load_grid(tmp_path / "grid.yaml", {"seeds": [0, 1, 2], "report": ["metrics.fad", "metrics.kad"]})
    cells = [c for c in ablate.cells(grid) if c["group"] in ("baseline", "amp_lam0.1")]
    for c in cells:
        metrics = {"fad": 1.0 + c["seed"], "kad": 0.5 * c["seed"]}
        if c["seed"] == 2:
            del metrics["kad"]  # e.g. scored before kad was added to the grid's metrics
        if c["group"] == "amp_lam0.1" and c["seed"] == 1:
            del metrics["kad"]
        (c["run"] / "eval").mkdir(parents=True)
        (c["run"] / "eval" / "metrics.json").write_text(json.dumps({"metrics": metrics}))
    yerrs = []
    bar = matplotlib.axes.Axes.bar
    monkeypatch.setattr(matplotlib.axes.Axes, "bar", lambda ax, *a, **kw: yerrs.append(kw["yerr"]) or bar(ax, *a, **kw))
    rows = {r["group"]: r for r in ablate.report(grid, cells)["rows"]}
    assert rows["baseline"]["metrics.kad"]["seeds"] == [0, 1] and rows["amp_lam0.1"]["metrics.kad"]["std"] is None
    md = (grid["out"] / "results.md").read_text()
    assert "| baseline | - | 3 | 2 +- 1 | 0.25 +- 0.35 (2 of 3 seeds) |" in md
    assert "| amp | 0.1 | 3 | 2 +- 1 | 0 (1 of 3 seeds) |" in md
    assert yerrs[0] == [1.0, 1.0] and yerrs[1][0] == pytest.approx(0.125**0.5) and math.isnan(yerrs[1][1])


def test_report_warns_when_cells_were_scored_by_different_classifiers_or_trained_at_another_precision(tmp_path):
    """A grid that outlives its machine: the next machine retrains the classifier (other weights) and may
    resolve train.fast_cpu otherwise; its cells are pooled with the archived ones, so the report says so."""
    grid = _grid(tmp_path)
    cells = ablate.cells(grid)

    def finish(c, sha1, acc, fast_cpu):
        (c["run"] / "eval").mkdir(parents=True, exist_ok=True)
        clf = {"weights_sha1": sha1, "test_accuracy": acc}
        (c["run"] / "eval" / "metrics.json").write_text(json.dumps({"metrics": {"fad": 1.0}, "classifier": clf}))
        (c["run"] / "config.yaml").write_text(f"train: {{steps: 7, batch_size: 3, fast_cpu: '{fast_cpu}'}}\n")

    for c in cells:
        finish(c, "a" * 40, 0.983, "off")
    ablate.report(grid, cells)
    md = (grid["out"] / "results.md").read_text()
    assert "every cell: classifier aaaaaaaaaaaa (test accuracy 98.3%); train.fast_cpu off" in md
    assert "WARNING" not in md
    for c in cells[3:]:  # the second seed, on a new machine
        finish(c, "b" * 40, 0.958, "on")
    res = ablate.report(grid, cells)
    md = (grid["out"] / "results.md").read_text()
    assert (
        "WARNING: the cells differ in classifier, so their scores are not comparable: aaaaaaaaaaaa (test accuracy "
        "98.3%): baseline seed 0, amp_lam0.1 seed 0, amp_lam0.01 seed 0; bbbbbbbbbbbb (test accuracy 95.8%): "
        "baseline seed 1, amp_lam0.1 seed 1, amp_lam0.01 seed 1" in md
    )
    assert "WARNING: the cells differ in train.fast_cpu, so their scores are not comparable: off: baseline seed 0" in md
    assert "every cell:" not in md and sorted(res["scored_and_trained"]["train.fast_cpu"]) == ["off", "on"]


def test_report_plots_one_panel_per_key_with_the_baseline_and_links_it(tmp_path):
    from PIL import Image

    grid = _grid(tmp_path)
    cells = ablate.cells(grid)
    for i, c in enumerate(cells):
        (c["run"] / "eval").mkdir(parents=True)
        metrics = {"fad": 1.0 + i, "kad": 0.5 * i, "inception_score": 2.0, "power_spectrum_db_high": i - 2.0}
        (c["run"] / "eval" / "metrics.json").write_text(json.dumps({"metrics": metrics}))
        (c["run"] / "config.yaml").write_text("train: {steps: 7, batch_size: 3}\n")
    keys = ["metrics.fad", "metrics.kad"]
    res = ablate.report({**grid, "report": keys}, cells)
    assert res["plot"] == {"file": "results.png", "baseline": "baseline", "panels": ["fad", "kad"]}
    assert json.loads((grid["out"] / "results.json").read_text())["plot"] == res["plot"]
    assert Image.open(grid["out"] / "results.png").size == (616, 352)  # 2 panels of 2.8 x 3.2 in at 110 dpi
    md = (grid["out"] / "results.md").read_text()
    assert md.endswith("![mean +- std over seeds, one dot per seed; dashed line: baseline](results.png)\n")
    keys += ["metrics.inception_score", "metrics.power_spectrum_db_high"]
    res = ablate.report({**grid, "report": keys}, cells)
    assert res["plot"]["panels"] == ["fad", "kad", "inception_score", "power_spectrum_db_high"]
    assert Image.open(grid["out"] / "results.png").size == (924, 704)  # 3 columns, 2 rows
    res = ablate.report({**grid, "report": []}, cells)
    assert res["plot"] is None and not (grid["out"] / "results.png").exists()  # no stale picture
    assert "results.png" not in (grid["out"] / "results.md").read_text()


def test_grid_without_required_key_names_it(tmp_path):
    (tmp_path / "g.yaml").write_text("config: a.yaml\n")
    with pytest.raises(SystemExit, match="missing key 'train_data'"):
        ablate.load_grid(tmp_path / "g.yaml")


def test_inline_regularizer_variant_composes(tmp_path):
    from audiodiff.config import load_config

    (tmp_path / "base.yaml").write_text("train: {steps: 7}\n")
    grid = {"config": "base.yaml", "train_data": "d", "ref": "r", "out": "o", "seeds": [3],
            "variants": [{"name": "w", "regularizer": {"weighting": "weighted", "losses": [{"name": "amp"}]},
                          "lams": [0.5]}]}  # fmt: skip
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(grid))
    (cell,) = ablate.cells(ablate.load_grid(tmp_path / "g.yaml"))
    assert cell["group"] == "w_lam0.5"
    (tmp_path / "run.yaml").write_text(cell["config"])
    cfg = load_config(tmp_path / "run.yaml", ["name=x", "data.train=/d"])
    assert cfg.regularizer.lam == 0.5 and cfg.regularizer.weighting == "weighted" and cfg.train.seed == 3


def test_report_reads_embedding_metrics_under_old_and_new_names(tmp_path):
    """Grids name metrics.fad_ge2e since issue 17; old grids say metrics.fad, old metrics.json store "fad"."""
    grid = _grid(tmp_path)
    cells = [c for c in ablate.cells(grid) if c["group"] == "baseline"]  # seeds 0 and 1
    old = {"metrics": {"fad": 1.0}, "embedder": {"name": "ge2e"}}
    new = {"metrics": {"fad_ge2e": 3.0}, "embedder": {"name": "ge2e"}}
    for c, metrics in zip(cells, [old, new]):
        (c["run"] / "eval").mkdir(parents=True)
        (c["run"] / "eval" / "metrics.json").write_text(json.dumps(metrics))
        (c["run"] / "config.yaml").write_text("train: {steps: 7, batch_size: 3}\n")
    for key in ("metrics.fad", "metrics.fad_ge2e"):
        row = ablate.report({**grid, "report": [key]}, cells)["rows"][0]
        assert row[key]["values"] == [1.0, 3.0]
    row = ablate.report({**grid, "report": ["metrics.fad_vggish"]}, cells)["rows"][0]
    assert "metrics.fad_vggish" not in row  # another embedder's score is not this one


def test_packing_defaults_to_one_thread_per_core_and_refuses_oversubscription():
    assert ablate.packing(None, 1, 2) == (2, 1)
    assert ablate.packing(None, 2, 2) == (1, 2)
    assert ablate.packing(None, 1, 16) == (16, 1) and ablate.packing(3, 1, 4) == (3, 1)
    with pytest.raises(ValueError, match="--workers 2 x --threads 2 = 4 threads on 2 cores"):
        ablate.packing(2, 2, 2)
    with pytest.raises(ValueError, match="3 threads on 2 cores"):
        ablate.packing(None, 3, 2)  # one process of 3 threads still oversubscribes
    with pytest.raises(ValueError, match="must be >= 1"):
        ablate.packing(0, 1, 2)


def test_threads_reach_the_run_environment(tmp_path, monkeypatch):
    seen = {}

    def fake_run(cmd, stdout, stderr, env):
        seen.update(omp=env["OMP_NUM_THREADS"], mkl=env["MKL_NUM_THREADS"])
        return type("Done", (), {"returncode": 0})()

    monkeypatch.setattr(ablate.subprocess, "run", fake_run)
    ablate._sh(["true"], tmp_path / "log", threads=2)
    assert seen == {"omp": "2", "mkl": "2"}


def test_report_sums_the_grid_wall_time_over_invocations_with_their_packing(tmp_path):
    """Every invocation's time counts (not the last one's); an entry from before the cell counts were
    recorded (only "cells": all it was given) reads as an upper bound on the cells that ran."""
    grid = _grid(tmp_path)
    cells = ablate.cells(grid)
    ablate.record_time(grid["out"], 100.04, 6, 2, 1, ["train"])  # as ablate.py wrote it before the counts
    ablate.record_time(grid["out"], 61.26, 6, 1, 2, ["train"], {"ran": 2, "skipped": 4})
    cells[0]["run"].mkdir(parents=True)
    (cells[0]["run"] / "config.yaml").write_text("train: {steps: 7, batch_size: 3}\n")
    times = json.loads((grid["out"] / "grid_time.json").read_text())
    assert [t["wall_s"] for t in times] == [100.0, 61.3]  # every invocation kept, in order
    assert "ran" not in times[0] and times[1] | {"wall_s": 0} == {
        "wall_s": 0, "cells": 6, "packing": "1 process x 2 threads", "stages": ["train"],
        "ran": 2, "skipped": 4, "restored": 0, "failed": 0}  # fmt: skip
    res = ablate.report(grid, cells)
    assert res["grid_time"]["wall_s"] == 161.3 and res["grid_time"]["invocations"] == times
    assert (
        "grid wall time 161 s here, summed over 2 invocations (2 processes x 1 thread / 1 process x 2 threads; "
        "cells that ran a stage in each: at most 6, 2)" in (grid["out"] / "results.md").read_text()
    )


def test_a_grid_resumed_on_a_new_machine_claims_only_the_cells_it_ran(tmp_path, monkeypatch):
    """Machine A trains the baseline and archives it; machine B restores those cells, trains the rest, then
    runs the grid again (nothing left to run). B's report does not count the restored or skipped cells as runs
    of its wall time (it said "6 runs" for B's last invocation, which ran none)."""
    path, called = _archived_grid(tmp_path / "a", monkeypatch)
    _run_grid(monkeypatch, path, "--only", "baseline")
    shutil.copytree(tmp_path / "a", tmp_path / "b", ignore=shutil.ignore_patterns("exp"))
    path = tmp_path / "b" / "grid.yaml"
    called.clear()
    _run_grid(monkeypatch, path)
    assert called == ["train", "generate", "evaluate"] * 4
    res = _run_grid(monkeypatch, path)
    times = json.loads((tmp_path / "b" / "exp" / "abl" / "grid_time.json").read_text())
    assert [(t["cells"], t["ran"], t["skipped"], t["restored"], t["failed"]) for t in times] == [
        (6, 4, 0, 2, 0), (6, 0, 4, 2, 0)]  # fmt: skip
    assert res["grid_time"]["cells_trained_here"] == 4 and res["grid_time"]["cells_from_archive"] == 2
    md = (tmp_path / "b" / "exp" / "abl" / "results.md").read_text()
    assert "6 runs" not in md and "cells that ran a stage in each: 4, 0)" in md
    assert "cells reported: 4 trained here, 2 restored from the archive (trained elsewhere, not in this time)" in md


def _trained_cell(tmp_path, monkeypatch, called):
    """The first cell of the grid, trained; `audiodiff` commands are recorded in `called`, not run."""
    grid = _grid(tmp_path)
    cell = ablate.cells(grid)[0]
    (cell["run"] / "generated").mkdir(parents=True)
    (cell["run"] / "eval").mkdir()
    (cell["run"] / "timing.json").write_text(json.dumps({"train_done": True}))
    (cell["run"] / "config.yaml").write_text("train: {steps: 7, batch_size: 3}\n")
    monkeypatch.setattr(ablate, "_sh", lambda cmd, log, threads=1: called.append(cmd[3]))
    return grid, cell


def test_an_interrupted_generate_is_run_again_and_its_old_scores_dropped(tmp_path, monkeypatch, capsys):
    called = []
    grid, cell = _trained_cell(tmp_path, monkeypatch, called)
    gen, ev = cell["run"] / "generated", cell["run"] / "eval"
    # what a Ctrl-C during generate leaves: the marker generate writes first, beside an earlier evaluation
    (gen / "settings.json").write_text(json.dumps({"complete": False, "files": [], "pending": ["0", "1"]}))
    (ev / "metrics.json").write_text(json.dumps({"metrics": {"fad": 1.0}}))
    ablate.run_cell(cell, grid, {"train", "generate", "evaluate"}, False)
    assert called == ["generate", "evaluate"]
    assert not (ev / "metrics.json").exists()  # the scores of the replaced set are gone
    assert "generate did not finish this set; generating it again" in capsys.readouterr().out
    called.clear()
    (gen / "settings.json").write_text(json.dumps({"complete": True, "files": ["0.wav"]}))
    (ev / "metrics.json").write_text(json.dumps({"metrics": {"fad": 1.0}}))
    ablate.run_cell(cell, grid, {"train", "generate", "evaluate"}, False)
    assert called == []  # finished stages are skipped


def test_a_truncated_metrics_json_is_evaluated_again_and_left_out_of_the_report(tmp_path, monkeypatch, capsys):
    called = []
    grid, cell = _trained_cell(tmp_path, monkeypatch, called)
    (cell["run"] / "generated" / "settings.json").write_text(json.dumps({"complete": True, "files": ["0.wav"]}))
    metrics = cell["run"] / "eval" / "metrics.json"
    metrics.write_text('{"metrics": {"fad": 1.')  # an evaluate killed while writing it (before the atomic write)
    ablate.run_cell(cell, grid, {"generate", "evaluate"}, False)
    assert called == ["evaluate"]
    assert f"{metrics}: not JSON" in capsys.readouterr().out
    assert ablate.report(grid, [cell])["rows"] == []  # left out, said, no traceback
    assert "treated as missing" in capsys.readouterr().out


def test_truncated_bookkeeping_files_are_redone_not_a_traceback(tmp_path, monkeypatch, capsys):
    """timing.json / grid_time.json cut off by a crash: the cell retrains, the grid time restarts, with a word."""
    called = []
    grid, cell = _trained_cell(tmp_path, monkeypatch, called)
    (cell["run"] / "timing.json").write_text('{"train_do')
    ablate.run_cell(cell, grid, {"train"}, False)
    assert called == ["train"] and json.loads((cell["run"] / "timing.json").read_text())["train_done"]
    (grid["out"] / "grid_time.json").write_text("[{")
    ablate.record_time(grid["out"], 5.0, 6, 1, 1, ["train"])
    assert [t["wall_s"] for t in json.loads((grid["out"] / "grid_time.json").read_text())] == [5.0]
    assert capsys.readouterr().err.count("not JSON (an interrupted write?); treated as missing") == 2


def test_cells_run_seed_major_so_a_cut_grid_has_every_variant(tmp_path):
    grid = _grid(tmp_path)
    order = [(c["seed"], c["group"]) for c in ablate.cells(grid)]
    seeds = [seed for seed, _ in order]
    assert seeds == sorted(seeds, key=grid["seeds"].index)  # all of seed 0 first, then seed 1, ...
    groups = [g for _, g in order]
    per_seed = len(set(groups))
    assert per_seed > 1 and groups[:per_seed] == groups[per_seed : 2 * per_seed]  # same variant order each time


def test_set_replaces_grid_keys_for_a_smoke_and_its_overrides_reach_every_train(tmp_path, monkeypatch):
    """--set out=... seeds=[0] overrides=[train.steps=2]: a grid file run small in a scratch folder."""
    _grid(tmp_path)
    sets = ablate.grid_sets(["out=exp/smoke", "seeds=[0]", "overrides=[train.steps=2]", "generate=[--seeds, 0-3]"])
    grid = ablate.load_grid(tmp_path / "grid.yaml", sets)
    assert grid["out"] == tmp_path / "exp" / "smoke" and grid["generate"] == ["--seeds", "0-3"]
    cells = ablate.cells(grid)
    assert [(c["group"], c["seed"]) for c in cells] == [("baseline", 0), ("amp_lam0.1", 0), ("amp_lam0.01", 0)]
    called = []
    monkeypatch.setattr(ablate, "_sh", lambda cmd, log, threads=1: called.append(cmd))
    ablate.run_cell(cells[1], grid, {"train"}, False)
    assert called[0][3] == "train" and called[0][-1] == "train.steps=2"
    with pytest.raises(ValueError, match="expected KEY=YAML with KEY one of config, train_data"):
        ablate.grid_sets(["steps=2"])


@pytest.mark.parametrize("path", sorted(ROOT.glob("egs/*/grid*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_grid_composes_each_cell_config(path, tmp_path):
    """Each variant of each egs grid file composes into a config that loads (keys, loss names, lambda) and reports
    metrics.json keys; a regularized variant carries its lambda and losses, the baseline none."""
    from audiodiff.config import load_config

    grid = ablate.load_grid(path)
    assert all(k.startswith("metrics.") for k in grid.get("report", []))
    for cell in (c for c in ablate.cells(grid) if c["seed"] == grid["seeds"][0]):
        (tmp_path / "run.yaml").write_text(cell["config"])
        cfg = load_config(tmp_path / "run.yaml", ["name=x", "data.train=/d", *cell["overrides"]])
        assert (cfg.regularizer.lam, bool(cfg.regularizer.losses)) == (
            (cell["lam"], True) if cell["lam"] else (0, False)
        )


def test_a_vocoder_grids_mels_from_is_relative_to_the_grid_file_not_the_working_folder(tmp_path, monkeypatch):
    """generate: [--mels-from, data/test] reached `audiodiff generate` as written, so a grid started from
    another folder than its own vocoded the wrong set or none ("data source not found")."""
    _grid(tmp_path)
    path = tmp_path / "grid.yaml"
    generate = {"generate": ["--mels-from", "data/test", "--seeds", 0]}  # an int: subprocess takes strings only
    path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text()) | generate))
    monkeypatch.chdir(tmp_path.parent)  # not the grid's folder
    grid = ablate.load_grid(path)
    assert grid["generate"] == ["--mels-from", str(tmp_path / "data" / "test"), "--seeds", "0"]
    called = []
    monkeypatch.setattr(ablate, "_sh", lambda cmd, log, threads=1: called.append(cmd))
    ablate.run_cell(ablate.cells(grid)[0], grid, {"generate"}, False)
    assert called[0][3] == "generate" and called[0][-4:] == ["--mels-from", str(tmp_path / "data/test"), "--seeds", "0"]
    smoke = ablate.load_grid(path, ablate.grid_sets(["generate=[--vocoder, ../voc, --mels-from, /abs/x]"]))
    assert smoke["generate"] == ["--vocoder", str(tmp_path.parent / "voc"), "--mels-from", "/abs/x"]
    eq = ablate.load_grid(path, ablate.grid_sets(["generate=[--mels-from=data/test, --seeds, 0]"]))
    assert eq["generate"] == [f"--mels-from={tmp_path / 'data' / 'test'}", "--seeds", "0"]  # click's = spelling


def test_a_shipped_vocoders_name_stays_a_name_and_a_path_beside_the_grid_wins(tmp_path, monkeypatch):
    """generate: [--vocoder, NAME] with a model shipped in the package (generate takes its name, as --ckpt's)
    became <grid folder>/NAME, a checkpoint path that does not exist: the grid could not use it."""
    from audiodiff.release import shipped_models

    name = next(iter(shipped_models()))
    _grid(tmp_path)
    path = tmp_path / "grid.yaml"
    monkeypatch.chdir(tmp_path.parent)
    for spelling, expect in (
        (["--vocoder", name], ["--vocoder", name]),
        ([f"--vocoder={name}"], [f"--vocoder={name}"]),
    ):
        grid = ablate.load_grid(path, ablate.grid_sets([f"generate=[{', '.join(spelling)}]"]))
        assert grid["generate"] == expect
    other = ablate.load_grid(path, ablate.grid_sets(["generate=[--vocoder, no_such_model]"]))
    assert other["generate"] == ["--vocoder", str(tmp_path / "no_such_model")]  # not shipped: a path
    (tmp_path / name).mkdir()  # a run directory of that name beside the grid file is what it means
    beside = ablate.load_grid(path, ablate.grid_sets([f"generate=[--vocoder, {name}]"]))
    assert beside["generate"] == ["--vocoder", str(tmp_path / name)]


def test_evaluate_path_options_are_relative_to_the_grid_file_like_generates(tmp_path, monkeypatch):
    """evaluate: [--floor, exp/real/eval] reached `audiodiff evaluate` as written, relative to the folder ablate.py
    was started from, while generate's --mels-from/--vocoder were resolved against the grid file."""
    import click

    from audiodiff.cli_eval import evaluate

    _grid(tmp_path)
    path = tmp_path / "grid.yaml"
    extra = ["--metrics", "fad", "--floor", "exp/real/eval", "--embedder-weights=w/ge2e.pt", "--csv", "/abs/r.csv"]
    path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text()) | {"evaluate": [*extra, "--per-file"]}))
    monkeypatch.chdir(tmp_path.parent)  # not the grid's folder
    grid = ablate.load_grid(path)
    resolved = ["--floor", str(tmp_path / "exp/real/eval"), f"--embedder-weights={tmp_path / 'w/ge2e.pt'}"]
    assert grid["evaluate"] == ["--metrics", "fad", *resolved, "--csv", "/abs/r.csv", "--per-file"]
    called = []
    monkeypatch.setattr(ablate, "_sh", lambda cmd, log, threads=1: called.append(cmd))
    ablate.run_cell(ablate.cells(grid)[0], grid, {"evaluate"}, False)
    assert called[0][3] == "evaluate" and called[0][-8:] == grid["evaluate"]
    # every option of `audiodiff evaluate` that takes a file or folder is resolved
    assert {o for p in evaluate.params if isinstance(p.type, click.Path) for o in p.opts} == set(ablate.EVALUATE_PATHS)


def test_set_refuses_non_lists_and_bad_yaml_and_null_drops_an_optional_key(tmp_path):
    """--set overrides=train.steps=2 (a string) was splatted into one train argument per character; a YAML
    syntax error was a traceback; --set classifier=null was a TypeError on the path join."""
    _grid(tmp_path)
    path = tmp_path / "grid.yaml"
    with pytest.raises(SystemExit, match=r"^--set: overrides must be a YAML list \(overrides: \[\.\.\.\]\), got 'tr"):
        ablate.load_grid(path, ablate.grid_sets(["overrides=train.steps=2"]))
    with pytest.raises(SystemExit, match="^--set: seeds must be a YAML list"):
        ablate.load_grid(path, ablate.grid_sets(["seeds=0"]))
    with pytest.raises(ValueError, match=r"^--set 'generate=\[--seeds, 0-3': not YAML \("):
        ablate.grid_sets(["generate=[--seeds, 0-3"])
    grid = yaml.safe_load(path.read_text()) | {"classifier": "clf", "generate": "--seeds 0-3"}
    path.write_text(yaml.safe_dump(grid))
    with pytest.raises(SystemExit, match=f"^{path}: generate must be a YAML list"):
        ablate.load_grid(path)
    grid = ablate.load_grid(path, ablate.grid_sets(["classifier=null", "generate=[--seeds, 0-3]"]))
    assert "classifier" not in grid and grid["generate"] == ["--seeds", "0-3"]


def _fake_audiodiff(called):
    """A stand-in for ablate's `_sh`: records the command and writes what train, generate and evaluate leave."""

    def sh(cmd, log, threads=1):
        called.append(cmd[3])
        if cmd[3] == "train":
            run = Path(cmd[4]).parent
            (run / "config.yaml").write_text("train: {steps: 7, batch_size: 3}\n")
            (run / "log.txt").write_text("commit 1234abcd56\nmachine Some CPU, 1 thread(s), torch x\n")
        elif cmd[3] == "generate":
            gen = Path(cmd[cmd.index("--out") + 1])
            gen.mkdir(parents=True)
            (gen / "settings.json").write_text(json.dumps({"complete": True, "files": ["0.wav"]}))
        else:
            ev = Path(cmd[cmd.index("--out") + 1])
            run = ev.parent
            ev.mkdir(parents=True, exist_ok=True)
            fad = 1.0 + len(run.parent.name) + 0.5 * int(run.name.removeprefix("seed"))
            report = {"metrics": {"fad": fad}, "gen": str(run / "generated")}
            if "--classifier" in cmd:  # as evaluate records the classifier that scored the clips
                clf = Path(cmd[cmd.index("--classifier") + 1])
                weights = (clf if clf.is_dir() else clf.parent) / "classifier.safetensors"
                report["classifier"] = {"weights_sha1": hashlib.sha1(weights.read_bytes()).hexdigest()}
            (ev / "metrics.json").write_text(json.dumps(report))

    return sh


def _run_grid(monkeypatch, path, *args):
    """recipes/ablate.py `path` args..., as from the command line; results.json."""
    monkeypatch.setattr(ablate.sys, "argv", ["ablate.py", str(path), "--workers", "1", *args])
    ablate.main()
    return json.loads((path.parent / "exp" / "abl" / "results.json").read_text())


def _archived_grid(tmp_path, monkeypatch):
    """The test grid with `archive: archive/abl`, its audiodiff commands faked; (grid file, called)."""
    tmp_path.mkdir(exist_ok=True)
    _grid(tmp_path)
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text()) | {"archive": "archive/abl"}))
    called = []
    monkeypatch.setattr(ablate, "_sh", _fake_audiodiff(called))
    return path, called


def test_an_archived_grid_is_restored_on_a_new_machine_without_running_anything(tmp_path, monkeypatch, capsys):
    """The machine is lost with its run directories; the committed archive brings back the scores, and
    generate (no checkpoint there) / evaluate (no clips) are not run on the restored cells."""
    path, called = _archived_grid(tmp_path / "a", monkeypatch)
    first = _run_grid(monkeypatch, path)
    assert called == ["train", "generate", "evaluate"] * 6 and first["archived"] == []
    entry = tmp_path / "a" / "archive" / "abl" / "amp_lam0.1" / "seed1"
    assert sorted(str(p.relative_to(entry)) for p in entry.rglob("*") if p.is_file()) == [
        "archived.json", "config.yaml", "eval/metrics.json", "run.yaml", "timing.json"]  # fmt: skip
    info = json.loads((entry / "archived.json").read_text())
    assert info["commit"] == "1234abcd56" and info["machine"] and info["date"]
    assert yaml.safe_load((entry / "run.yaml").read_text())["defaults"] == ["base.yaml", "amp.yaml"]  # portable
    # a new machine: another checkout path, the grid files and the archive (committed), no exp/
    shutil.copytree(tmp_path / "a", tmp_path / "b", ignore=shutil.ignore_patterns("exp"))
    path = tmp_path / "b" / "grid.yaml"
    called.clear()
    capsys.readouterr()
    again = _run_grid(monkeypatch, path)
    assert called == []
    assert again["rows"] == first["rows"] and (again["steps"], again["batch_size"]) == (7, 3)
    assert [(a["group"], a["seed"], a["commit"]) for a in again["archived"]] == [
        (c["group"], c["seed"], "1234abcd56") for c in ablate.cells(ablate.load_grid(path))]  # fmt: skip
    out = capsys.readouterr().out
    assert "amp_lam0.1 seed 1: restored from the archive" in out
    assert "from the grid's archive (trained elsewhere): baseline seed 0 (commit 1234abcd56" in out
    _run_grid(monkeypatch, path, "--stage", "generate")
    assert called == [] and not (tmp_path / "b" / "exp" / "abl" / "baseline" / "seed0" / "generated").exists()
    _run_grid(monkeypatch, path, "--stage", "evaluate", "--force-eval")
    assert called == []
    assert (
        "baseline seed 0: restored from the archive, no generated clips: --force-eval skips it"
        in capsys.readouterr().out
    )


def test_an_archive_keeps_its_record_when_a_run_scores_differently(tmp_path, monkeypatch, capsys):
    """A grid run before the key existed is archived by --stage report; later different metrics do not
    replace the archived ones silently."""
    path, called = _archived_grid(tmp_path, monkeypatch)
    first = _run_grid(monkeypatch, path, "--set", "archive=null")
    archive = tmp_path / "archive" / "abl"
    assert not archive.exists()
    _run_grid(monkeypatch, path, "--stage", "report")
    assert len(list(archive.glob("*/seed*/eval/metrics.json"))) == 6
    kept = (archive / "baseline" / "seed1" / "eval" / "metrics.json").read_text()
    run_metrics = tmp_path / "exp" / "abl" / "baseline" / "seed1" / "eval" / "metrics.json"
    run_metrics.write_text(json.dumps({"metrics": {"fad": 99.0}}))  # e.g. re-scored with --force-eval
    capsys.readouterr()
    res = _run_grid(monkeypatch, path, "--stage", "report")
    assert (archive / "baseline" / "seed1" / "eval" / "metrics.json").read_text() == kept
    out = capsys.readouterr().out
    assert f"baseline seed 1: {run_metrics} differs from the archived {archive / 'baseline' / 'seed1'}; kept" in out
    assert res["rows"][0]["metrics.fad"]["values"] != first["rows"][0]["metrics.fad"]["values"]  # the run's own


def test_a_restored_cell_made_with_another_config_is_an_error_naming_it(tmp_path, monkeypatch):
    path, called = _archived_grid(tmp_path, monkeypatch)
    _run_grid(monkeypatch, path)
    shutil.rmtree(tmp_path / "exp")
    (tmp_path / "base2.yaml").write_text("train: {steps: 9, batch_size: 3}\n")
    called.clear()
    with pytest.raises(SystemExit, match=r"baseline seed 0: the archive \S+ was made with another config"):
        _run_grid(monkeypatch, path, "--set", "config=base2.yaml")
    other = ["--set", "out=exp/other", "--set", "archive=archive/abl"]  # other overrides train apart (below)
    with pytest.raises(SystemExit, match=r"amp_lam0.1 seed 0: the archive \S+ was made with another config"):
        _run_grid(monkeypatch, path, *other, "--set", "overrides=[train.steps=2]", "--only", "amp")
    with pytest.raises(SystemExit, match="baseline seed 0: the archive .* delete that archive entry"):
        _run_grid(monkeypatch, path, "--set", "config=base2.yaml", "--stage", "report")
    assert called == []


def test_a_smoke_in_a_scratch_folder_leaves_the_archive_out(tmp_path, monkeypatch, capsys):
    path, _ = _archived_grid(tmp_path, monkeypatch)
    assert ablate.load_grid(path)["archive"] == tmp_path / "archive" / "abl"
    assert "archive" not in ablate.load_grid(path, ablate.grid_sets(["out=exp/smoke", "overrides=[train.steps=2]"]))
    assert "--set out=exp/smoke: the grid's archive is left out" in capsys.readouterr().out
    sets = ablate.grid_sets(["out=exp/smoke", "archive=archive/smoke"])
    assert ablate.load_grid(path, sets)["archive"] == tmp_path / "archive" / "smoke"


def test_a_restored_cell_scored_by_another_classifier_is_an_error(tmp_path, monkeypatch):
    """Scores are comparable only under one classifier: a grid whose classifier was retrained (another
    machine, other weights) must not mix the archive's scores with new ones. The record's metrics.json
    names the classifier that scored it (weights sha1, as evaluate wrote it); archived.json holds no hash."""
    path, called = _archived_grid(tmp_path, monkeypatch)
    clf = tmp_path / "clf"
    clf.mkdir()
    (clf / "classifier.safetensors").write_bytes(b"weights one")
    _run_grid(monkeypatch, path, "--set", "classifier=clf")
    entry = tmp_path / "archive" / "abl" / "baseline" / "seed0"
    assert "classifier_sha256" not in json.loads((entry / "archived.json").read_text())
    held = json.loads((entry / "eval" / "metrics.json").read_text())["classifier"]["weights_sha1"]
    assert held == hashlib.sha1(b"weights one").hexdigest()
    shutil.rmtree(tmp_path / "exp")  # a new machine: same classifier file, restored without running anything
    called.clear()
    _run_grid(monkeypatch, path, "--set", "classifier=clf")
    assert called == []
    (clf / "classifier.safetensors").write_bytes(b"weights two")  # retrained after the restore: the next run says so
    with pytest.raises(SystemExit, match=r"baseline seed 0: the archive \S+archived.json was scored with another"):
        _run_grid(monkeypatch, path, "--set", "classifier=clf")
    shutil.rmtree(tmp_path / "exp")  # a new machine that retrained the classifier
    two = hashlib.sha1(b"weights two").hexdigest()[:12]
    with pytest.raises(
        SystemExit,
        match=rf"baseline seed 0: the archive \S+seed0 was scored with another classifier \(weights sha1 "
        rf"{held[:12]} in its metrics.json; the grid's \S+clf is {two}\)",
    ):
        _run_grid(monkeypatch, path, "--set", "classifier=clf")
    assert called == []


def test_the_restore_checks_the_classifier_that_scored_the_cell_not_the_one_at_archive_time(tmp_path, monkeypatch):
    """A grid archived by `--stage report` after its classifier was swapped: the archive-time hash named the
    new classifier, so restoring under the one that scored the cells failed and restoring under the new one
    passed. metrics.json's weights sha1 is the scorer's. A record that still carries classifier_sha256 (written
    before) reads as before, the field ignored; a record scored without a classifier is not checked."""
    path, called = _archived_grid(tmp_path, monkeypatch)
    clf = tmp_path / "clf"
    clf.mkdir()
    (clf / "classifier.safetensors").write_bytes(b"scorer")
    _run_grid(monkeypatch, path, "--set", "classifier=clf", "--set", "archive=null")  # scored, not archived
    (clf / "classifier.safetensors").write_bytes(b"swapped")
    _run_grid(monkeypatch, path, "--set", "classifier=clf", "--stage", "report")  # archived now
    shutil.rmtree(tmp_path / "exp")
    with pytest.raises(SystemExit, match=r"baseline seed 0: the archive \S+ was scored with another classifier"):
        _run_grid(monkeypatch, path, "--set", "classifier=clf")
    shutil.rmtree(tmp_path / "exp")
    (clf / "classifier.safetensors").write_bytes(b"scorer")
    for info_file in (tmp_path / "archive").rglob("archived.json"):  # as archived before: the swapped file's hash
        info = json.loads(info_file.read_text())
        info_file.write_text(json.dumps(info | {"classifier_sha256": hashlib.sha256(b"swapped").hexdigest()}))
    called.clear()
    _run_grid(monkeypatch, path, "--set", "classifier=clf")
    assert called == []
    for metrics_file in (tmp_path / "archive").rglob("metrics.json"):  # scored before the grid had a classifier
        metrics_file.write_text(json.dumps(json.loads(metrics_file.read_text()) | {"classifier": None}))
    shutil.rmtree(tmp_path / "exp")
    (clf / "classifier.safetensors").write_bytes(b"swapped")
    _run_grid(monkeypatch, path, "--set", "classifier=clf")
    assert called == []


def test_the_grid_classifier_sha1_is_evaluates_and_reads_a_folder_with_a_dot_in_its_name_or_a_file_of_it(tmp_path):
    """As `audiodiff evaluate --classifier` takes it (load_classifier): a folder, whatever its name, or one
    of its files, hashed as load_classifier records weights_sha1 in metrics.json. A folder named like a file
    (clf.v2) was read as a file beside it: no hash, so archived cells were restored under any classifier."""
    from audiodiff.eval.classifier import Classifier, ClassifierConfig, load_classifier, save_classifier

    config = ClassifierConfig(kind="images", labels=["a", "b"], image_shape=[1, 4, 4], channels=[2], feature_dim=2)
    clf = save_classifier(Classifier(config), tmp_path / "clf_8khz.v2", {})
    sha1 = load_classifier(clf)[1]["weights_sha1"]
    assert sha1 == hashlib.sha1((clf / "classifier.safetensors").read_bytes()).hexdigest()
    assert ablate.grid_classifier_sha1({"classifier": clf}) == sha1
    assert ablate.grid_classifier_sha1({"classifier": clf / "classifier.json"}) == sha1
    assert ablate.grid_classifier_sha1({"classifier": tmp_path / "none"}) is None
    assert ablate.grid_classifier_sha1({}) is None


def test_an_archive_that_cannot_be_written_fails_its_cells_with_a_line_not_a_traceback(tmp_path, monkeypatch):
    """A read-only archive (here a file where its folder goes, refused to root too) was an OSError out of main
    after the cells ran: no grid_time.json, no report. Each cell now fails naming the archive and what to do;
    its run is kept, and --set archive=null reports it without training again."""
    path, called = _archived_grid(tmp_path, monkeypatch)
    (tmp_path / "archive").write_text("not a folder")
    with pytest.raises(
        SystemExit,
        match=r"^6 run\(s\) failed; first: baseline seed 0: cannot write its record to the archive \S+abl/baseline/"
        r"seed0 \(.+\); make \S+ writable, or run with --set archive=null to go without it$",
    ):
        _run_grid(monkeypatch, path)
    assert called == ["train", "generate", "evaluate"] * 6
    assert json.loads((tmp_path / "exp" / "abl" / "grid_time.json").read_text())[0]["failed"] == 6
    assert not list(tmp_path.glob("archive*/**/.seed*.tmp"))
    called.clear()
    res = _run_grid(monkeypatch, path, "--set", "archive=null")
    assert called == [] and [len(r["seeds"]) for r in res["rows"]] == [2, 2, 2]


def test_an_incomplete_archive_record_is_an_error_naming_it_and_the_run_that_made_it_repairs_it(
    tmp_path, monkeypatch, capsys
):
    """A record without run.yaml (a commit that missed a file) or with an unreadable archived.json (a merge
    conflict) was a FileNotFoundError traceback, or restored with no identity or classifier check at all."""
    path, called = _archived_grid(tmp_path / "a", monkeypatch)
    _run_grid(monkeypatch, path)
    entry = tmp_path / "a" / "archive" / "abl" / "baseline" / "seed0"
    (entry / "run.yaml").unlink()
    shutil.copytree(tmp_path / "a", tmp_path / "b", ignore=shutil.ignore_patterns("exp"))
    b, on_b = tmp_path / "b" / "grid.yaml", tmp_path / "b" / "archive" / "abl" / "baseline" / "seed0"
    called.clear()
    for broken in ("no run.yaml", "no readable archived.json"):
        said = rf"the archive \S+seed0 holds an incomplete record \({broken}\); restore it from git, or delete it"
        with pytest.raises(SystemExit, match=rf"baseline seed 0: {said} to train the cell anew"):
            _run_grid(monkeypatch, b, "--only", "baseline")
        shutil.copyfile(entry.parent / "seed1" / "run.yaml", on_b / "run.yaml")  # the same file: one seed apart
        (on_b / "archived.json").write_text('{"commit": "12')  # cut off
    assert called == []
    capsys.readouterr()
    _run_grid(monkeypatch, path, "--stage", "report")  # machine a, which trained the cell: its record replaces it
    assert (
        f"baseline seed 0: the archive {entry} holds an incomplete record (no run.yaml); replaced"
        in capsys.readouterr().out
    )
    assert yaml.safe_load((entry / "run.yaml").read_text())["defaults"] == ["base.yaml"]


def test_a_restored_cell_whose_archive_entry_was_deleted_is_not_archived_again(tmp_path, monkeypatch, capsys):
    """Deleting a cell's archive entry is how it is trained anew (the errors say so); a machine that had restored
    the cell wrote the entry back from its copy at its next report, so the deleted record came back."""
    path, called = _archived_grid(tmp_path / "a", monkeypatch)
    _run_grid(monkeypatch, path)
    shutil.copytree(tmp_path / "a", tmp_path / "b", ignore=shutil.ignore_patterns("exp"))
    b = tmp_path / "b" / "grid.yaml"
    _run_grid(monkeypatch, b)  # restores every cell
    entry, run = (
        tmp_path / "b" / "archive" / "abl" / "baseline" / "seed0",
        tmp_path / "b" / "exp" / "abl" / "baseline" / "seed0",
    )
    shutil.rmtree(entry)  # deleted to train the cell anew
    capsys.readouterr()
    _run_grid(monkeypatch, b, "--stage", "report")
    assert not entry.exists()
    assert (
        f"baseline seed 0: restored from the archive, which no longer holds it ({entry}): not archived again "
        f"(delete {run} to train the cell anew)" in capsys.readouterr().out
    )
    shutil.rmtree(run)
    called.clear()
    _run_grid(monkeypatch, b, "--only", "baseline")
    assert called == ["train", "generate", "evaluate"] and not (run / "archived.json").exists()
    assert json.loads((entry / "archived.json").read_text())["commit"] == "1234abcd56"


def test_only_restores_archives_and_reports_the_selected_variants_alone(tmp_path, monkeypatch, capsys):
    """`--only baseline` ran the baseline's cells but then restored (and checked) every archived cell: an amp
    record made with other overrides aborted the baseline's report. The restore pass and the report take the
    selected cells only, and results.md says which variants it covers."""
    path, called = _archived_grid(tmp_path / "a", monkeypatch)
    _run_grid(monkeypatch, path)
    shutil.copytree(tmp_path / "a", tmp_path / "b", ignore=shutil.ignore_patterns("exp"))
    amp = tmp_path / "b" / "archive" / "abl" / "amp_lam0.1" / "seed0" / "archived.json"
    amp.write_text(json.dumps(json.loads(amp.read_text()) | {"overrides": ["train.steps=3"]}))  # not this grid's
    b = tmp_path / "b" / "grid.yaml"
    called.clear()
    res = _run_grid(monkeypatch, b, "--only", "baseline")
    assert called == [] and [(r["group"], r["seeds"]) for r in res["rows"]] == [("baseline", [0, 1])]
    assert not (tmp_path / "b" / "exp" / "abl" / "amp_lam0.1").exists()  # not restored
    assert res["variants"] == ["baseline"]
    md = (tmp_path / "b" / "exp" / "abl" / "results.md").read_text()
    assert "variants reported: baseline (--only; the grid also has amp)" in md
    assert "variants reported" not in (tmp_path / "a" / "exp" / "abl" / "results.md").read_text()  # all of them
    with pytest.raises(SystemExit, match=r"amp_lam0.1 seed 0: the archive \S+ was made with another config"):
        _run_grid(monkeypatch, b, "--only", "amp")


def test_only_with_a_name_the_grid_does_not_have_is_an_error_listing_its_variants(tmp_path, monkeypatch, capsys):
    """`--only` with a typo ran and reported the other names' cells, or none: results.md and results.json were
    overwritten with a table of fewer variants (an empty one for `--only basline`) and grid_time.json got an entry.
    A name the grid does not have is refused before anything runs, naming it and the grid's variants."""
    path, called = _archived_grid(tmp_path, monkeypatch)
    _run_grid(monkeypatch, path)
    out = tmp_path / "exp" / "abl"
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    called.clear()
    for only in ("basline", "baseline,amp2"):
        with pytest.raises(SystemExit):
            _run_grid(monkeypatch, path, "--only", only)
        bad = only.removeprefix("baseline,")
        err = capsys.readouterr().err.splitlines()[-1]
        assert err == f"ablate.py: error: --only {only}: no variant {bad} in {path}; its variants: baseline, amp"
    assert called == [] and {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert _run_grid(monkeypatch, path, "--only", "amp,")["variants"] == ["amp"]  # an empty item is no name


def test_report_of_an_out_folder_without_finished_cells_says_so(tmp_path, monkeypatch):
    """`--stage report --set out=NEW` (no cell finished there, the archive left out) ended in a traceback: the
    report wrote results.json into an out folder nothing had created. It is a one-line error naming the folder
    and how to restore the archived cells; no out folder is made."""
    path, called = _archived_grid(tmp_path, monkeypatch)
    with pytest.raises(SystemExit, match=r"new: no finished cell to report \(no archive: --set archive=DIR"):
        _run_grid(monkeypatch, path, "--stage", "report", "--set", f"out={tmp_path / 'new'}")
    assert called == [] and not (tmp_path / "new").exists()


def test_two_invocations_on_one_out_folder_both_keep_their_grid_time_entry(tmp_path, monkeypatch):
    """grid_time.json was read, appended to and written without a lock: two ablate.py finishing together on one
    out folder (say `--only baseline` beside `--only amp`) both read the old list and the second write dropped the
    first's entry, and with it its wall time. The read-modify-write now holds a lock (here: the read is slowed
    so that every writer reads before any writes, as it would without the lock)."""
    import threading
    import time

    grid = _grid(tmp_path)
    read = ablate.read_json

    def slow_read(path, default):
        got = read(path, default)
        time.sleep(0.2)
        return got

    monkeypatch.setattr(ablate, "read_json", slow_read)
    writers = [
        threading.Thread(target=ablate.record_time, args=(grid["out"], float(i), 2, 1, 1, ["train"])) for i in range(3)
    ]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    times = json.loads((grid["out"] / "grid_time.json").read_text())
    assert sorted(t["wall_s"] for t in times) == [0.0, 1.0, 2.0]


def test_other_overrides_than_the_grid_files_need_an_out_folder_of_their_own(tmp_path, monkeypatch, capsys):
    """`--set overrides=...` without `--set out` trained the cells with those overrides in the grid's own out folder
    (the grid's next run skipped them as finished and reported them) and archived them as the grid's cells. It is
    refused, naming both keys, unless out names another folder; the grid file's own overrides are not a change."""
    path, called = _archived_grid(tmp_path, monkeypatch)
    path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text()) | {"overrides": ["train.fast_cpu=off"]}))
    refused = (
        rf"^--set overrides=\[\"train.steps=2\"\] trains the grid's cells with other overrides than {path} gives "
        rf"them: in its out folder {tmp_path / 'exp' / 'abl'} they would be reported \(and archived\) as its cells; "
        r"add --set out=DIR \(another folder\)$"
    )
    (tmp_path / "link").symlink_to(tmp_path / "exp")  # dangling until exp/ exists: resolved all the same
    for out in ([], ["--set", "out=exp/abl"], ["--set", "out=exp/../exp/abl"], ["--set", f"out={tmp_path}/exp/abl/"],
                ["--set", "out=link/abl"]):  # fmt: skip
        with pytest.raises(SystemExit, match=refused):
            _run_grid(monkeypatch, path, "--set", "overrides=[train.steps=2]", *out)
    with pytest.raises(SystemExit, match=r"^--set overrides=null trains the grid's cells with other overrides"):
        _run_grid(monkeypatch, path, "--set", "overrides=null", "--stage", "report")
    assert called == [] and not (tmp_path / "exp").exists() and not (tmp_path / "archive").exists()
    _run_grid(monkeypatch, path, "--set", "overrides=[train.fast_cpu=off]", "--only", "baseline")  # the file's own
    assert called == ["train", "generate", "evaluate"] * 2 and len(list((tmp_path / "archive").rglob("seed*"))) == 2
    grid = ablate.load_grid(path, ablate.grid_sets(["out=exp/smoke", "overrides=[train.steps=2]"]))
    assert grid["out"] == tmp_path / "exp" / "smoke" and "archive" not in grid


def test_no_overrides_written_as_an_empty_list_or_null_is_no_change_of_the_grid_files(tmp_path):
    """`--set overrides=[]` on a grid file without overrides (or `=null` on one with `overrides: []`) gives the
    cells the same (no) overrides, and was refused as "other overrides than the grid file gives them"."""
    _grid(tmp_path)
    path = tmp_path / "grid.yaml"
    grid = yaml.safe_load(path.read_text())
    for own, given in ((None, "[]"), ([], "null"), ([], "[]")):
        path.write_text(yaml.safe_dump(grid | ({} if own is None else {"overrides": own})))
        loaded = ablate.load_grid(path, ablate.grid_sets([f"overrides={given}"]))
        assert all(c["overrides"] == [] for c in ablate.cells(loaded))
    with pytest.raises(SystemExit, match=r"^--set overrides=\["):  # a real change still is refused
        ablate.load_grid(path, ablate.grid_sets(["overrides=[train.steps=2]"]))


ARCHIVED_GRIDS = [p for p in sorted(ROOT.glob("egs/*/grid*.yaml")) if "archive" in yaml.safe_load(p.read_text())]


@pytest.mark.parametrize("path", ARCHIVED_GRIDS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_committed_archive_restores_under_its_grid(path, tmp_path, capsys):
    """The records committed under docs/ablation/grids pass the restore's identity and classifier checks under
    the grid files as they are now (a change to the check must keep them valid), into a scratch out folder."""
    grid = ablate.load_grid(path) | {"out": tmp_path / "out"}
    cells = ablate.cells(grid)  # run directories under tmp_path
    held = sorted(
        str(m.parents[1].relative_to(grid["archive"])) for m in grid["archive"].glob("*/seed*/eval/metrics.json")
    )
    restored = sorted(f"{c['group']}/seed{c['seed']}" for c in cells if ablate.restore_cell(c, grid))
    assert restored == held


def test_a_config_outside_the_checkout_is_matched_by_its_content_not_its_path_from_the_grid(tmp_path, monkeypatch):
    """The restore compared a record's defaults as paths relative to the grid file: a base config outside the
    checkout (here all of tmp_path is) lies at another depth on a new machine, so the same config read as another
    and every archived cell was refused. Outside the checkout a config is its content (kept in archived.json)."""
    repo = tmp_path / "a" / "repo"
    repo.parent.mkdir()
    path, called = _archived_grid(repo, monkeypatch)
    (tmp_path / "a" / "conf").mkdir()
    (repo / "base.yaml").rename(tmp_path / "a" / "conf" / "base.yaml")
    path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text()) | {"config": "../conf/base.yaml"}))
    _run_grid(monkeypatch, path)
    info = json.loads((repo / "archive" / "abl" / "amp_lam0.1" / "seed0" / "archived.json").read_text())
    assert info["defaults_content"]["../conf/base.yaml"] == {"train": {"steps": 7, "batch_size": 3}}
    # a new machine: the checkout one folder deeper, the config where its grid file (edited there) says
    b = tmp_path / "b" / "deeper" / "repo"
    shutil.copytree(repo, b, ignore=shutil.ignore_patterns("exp"))
    (tmp_path / "b" / "conf").mkdir()
    shutil.copyfile(tmp_path / "a" / "conf" / "base.yaml", tmp_path / "b" / "conf" / "base.yaml")
    path = b / "grid.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text()) | {"config": "../../conf/base.yaml"}))
    called.clear()
    res = _run_grid(monkeypatch, path)
    assert called == [] and len(res["archived"]) == 6
    shutil.rmtree(b / "exp")
    (tmp_path / "b" / "conf" / "base.yaml").write_text("train: {steps: 9, batch_size: 3}\n")  # another config
    with pytest.raises(SystemExit, match=r"baseline seed 0: the archive \S+ was made with another config"):
        _run_grid(monkeypatch, path)
    assert called == []


def test_an_outside_configs_own_defaults_are_part_of_its_content(tmp_path):
    """A config outside the checkout is compared by content, and so are the files its own `defaults` name
    (relative to it): the same pair of files at two depths match, another model block under it does not."""
    import ablate_archive  # beside ablate.py, which put recipes/ on sys.path

    def layout(folder, model):
        folder.mkdir(parents=True)
        (folder / "model.yaml").write_text(f"model: {{channels: {model}}}\n")
        (folder / "base.yaml").write_text("defaults: [model.yaml]\ntrain: {steps: 7}\n")
        return yaml.safe_dump({"defaults": [str(folder / "base.yaml")], "train": {"seed": 0}})

    a, b, c = layout(tmp_path / "a", 8), layout(tmp_path / "b" / "deeper", 8), layout(tmp_path / "c", 16)
    ids = [ablate_archive._identity(run_yaml, [], tmp_path / "grid") for run_yaml in (a, b, c)]
    assert ids[0] == ids[1] != ids[2]
    assert ids[0]["run.yaml"]["defaults"] == [
        {"content": {"defaults": [{"content": {"model": {"channels": 8}}}], "train": {"steps": 7}}}
    ]


def _scored_grid(tmp_path, scores: dict, seeds=(0, 1, 2), **keys):
    """A grid of a baseline and amp at lambdas 0.1, 0.01, 0.001 whose cells hold finished evaluations:
    scores[metric][group] = one value per seed (a group missing from every metric has no cells)."""
    (tmp_path / "base.yaml").write_text("train: {steps: 7, batch_size: 3}\n")
    (tmp_path / "amp.yaml").write_text("regularizer: {lam: 1.0, losses: [{name: amp}]}\n")
    grid = {
        "config": "base.yaml", "train_data": "data/train", "ref": "data/test", "out": "exp/abl", "seeds": list(seeds),
        "report": [f"metrics.{m}" for m in scores],
        "variants": [{"name": "baseline"}, {"name": "amp", "loss": "amp.yaml", "lams": [0.1, 0.01, 0.001]}], **keys,
    }  # fmt: skip
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid))
    grid = ablate.load_grid(tmp_path / "grid.yaml")
    cells = [c for c in ablate.cells(grid) if any(c["group"] in by_group for by_group in scores.values())]
    for c in cells:
        (c["run"] / "eval").mkdir(parents=True)
        metrics = {m: by_group[c["group"]][seeds.index(c["seed"])] for m, by_group in scores.items()}
        (c["run"] / "eval" / "metrics.json").write_text(json.dumps({"metrics": metrics}))
    return grid, cells


# baseline, a clearly better IS (and a clearly worse classifier-FID), overlapping values, and a raw p of 0.033
# that Holm over the 3 groups lifts to 0.067; a signed error; a score every seed of every group gives the same
SCORES = {
    "inception_score": {"baseline": [6.0, 6.1, 6.05], "amp_lam0.1": [7.0, 7.1, 7.05],
                        "amp_lam0.01": [6.0, 6.2, 5.9], "amp_lam0.001": [6.13, 6.23, 6.18]},
    "classifier_fid": {"baseline": [2.0, 2.1, 2.05], "amp_lam0.1": [3.0, 3.1, 3.05],
                       "amp_lam0.01": [2.0, 2.2, 1.9], "amp_lam0.001": [2.1, 2.0, 2.2]},
    "power_spectrum_db_high": {"baseline": [0.0, 0.1, -0.1], "amp_lam0.1": [3.0, 3.1, 2.9],
                               "amp_lam0.01": [0.0, 0.2, 0.1], "amp_lam0.001": [0.1, 0.0, 0.2]},
    "pixel_histogram_tv": {g: [0.1, 0.1, 0.1] for g in ("baseline", "amp_lam0.1", "amp_lam0.01", "amp_lam0.001")},
}  # fmt: skip


def test_holm_multiplies_the_ith_smallest_p_by_m_minus_i_plus_1_non_decreasing_and_capped_at_1():
    assert ablate.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])  # 0.04 x 1 < 0.03 x 2: raised
    assert ablate.holm([0.5, 0.6, 0.01]) == pytest.approx([1.0, 1.0, 0.03])  # 0.5 x 2 = 1.0; 0.6 raised to it
    assert ablate.holm([0.2]) == [0.2] and ablate.holm([]) == []


def test_report_says_where_a_regularizer_helps_hurts_or_ties_against_the_baseline(tmp_path):
    from scipy import stats

    grid, cells = _scored_grid(tmp_path, SCORES)
    res = ablate.report(grid, cells)
    assert res["versus_baseline"]["baseline"] == "baseline" and res["versus_baseline"]["alpha"] == 0.05
    rows = {r["group"]: r for r in res["rows"]}
    assert "versus_baseline" not in rows["baseline"]
    vs = {g: rows[g]["versus_baseline"] for g in ("amp_lam0.1", "amp_lam0.01", "amp_lam0.001")}
    raw = [stats.ttest_ind(SCORES["inception_score"][g], SCORES["inception_score"]["baseline"], equal_var=False).pvalue
           for g in vs]  # fmt: skip
    assert [vs[g]["metrics.inception_score"]["p"] for g in vs] == pytest.approx(raw, rel=1e-12)
    assert raw[0] < raw[2] < 0.05 < raw[1]  # Holm by hand: x3 the smallest, x2 the next, x1 the largest
    holm = [3 * raw[0], max(2 * raw[2], raw[1]), max(3 * raw[0], 2 * raw[2])]
    assert [vs[g]["metrics.inception_score"]["p_holm"] for g in vs] == pytest.approx(holm, rel=1e-12)
    is_ = vs["amp_lam0.1"]["metrics.inception_score"]
    assert is_["difference"] == pytest.approx(1.0) and is_["verdict"] == "helps" and is_["n"] == [3, 3]
    assert vs["amp_lam0.01"]["metrics.inception_score"]["verdict"] == "ties"
    assert vs["amp_lam0.001"]["metrics.inception_score"]["verdict"] == "ties"  # raw p 0.033, adjusted 0.067
    assert vs["amp_lam0.1"]["metrics.classifier_fid"]["verdict"] == "hurts"  # +1 on a lower-is-better score
    assert vs["amp_lam0.01"]["metrics.classifier_fid"]["verdict"] == "ties"
    signed = vs["amp_lam0.1"]["metrics.power_spectrum_db_high"]  # +3 dB: tested on each seed's |error|
    base_abs = [abs(v) for v in SCORES["power_spectrum_db_high"]["baseline"]]  # 0, 0.1, 0.1: mean 0.0667
    assert signed["tested"] == "|error|" and signed["difference"] == pytest.approx(3.0)
    assert signed["abs_difference"] == pytest.approx(3.0 - 0.2 / 3)
    assert signed["p"] == pytest.approx(stats.ttest_ind([3.0, 3.1, 2.9], base_abs, equal_var=False).pvalue, rel=1e-12)
    assert signed["verdict"] == "hurts" and signed["p_holm"] < 1e-3
    flat = vs["amp_lam0.1"]["metrics.pixel_histogram_tv"]
    assert flat["difference"] == 0 and flat["p"] is None and flat["verdict"] is None and "no spread" in flat["why"]
    assert json.loads((grid["out"] / "results.json").read_text())["rows"][1]["versus_baseline"] == vs["amp_lam0.1"]
    md = (grid["out"] / "results.md").read_text()
    assert (
        "versus the baseline (baseline), per metric: difference of means, group - baseline (Holm-adjusted p), "
        "verdict at alpha 0.05\n\n- Welch's t-test (two-sided) over each group's seeds (3 seeds per group); "
        "Holm-Bonferroni over the 3 groups with a p, per metric\n" in md
    )
    assert (
        "| variant | lambda | inception_score (higher) | classifier_fid (lower) | power_spectrum_db_high (signed; "
        "\\|error\\|, lower) |" in md
    )
    assert f"| amp | 0.1 | +1 ({holm[0]:.2g}) helps | +1 ({holm[0]:.2g}) hurts | +3, \\|error\\| +2.93 (" in md
    assert "| amp | 0.001 | +0.13 (0.067) ties |" in md
    assert "\n\n- no p for pixel_histogram_tv (every group): no spread on either side" in md
    assert "no p for" not in md.replace("no p for pixel_histogram_tv", "")  # one line per reason
    assert md.index("| baseline | - | 3 |") < md.index("versus the baseline") < md.index("results.png")


def test_a_grids_better_key_flips_a_verdict_and_gives_a_signed_error_one(tmp_path):
    better = {"metrics.classifier_fid": "higher", "metrics.power_spectrum_db_high": "lower"}
    grid, cells = _scored_grid(tmp_path, SCORES, better=better)
    res = ablate.report(grid, cells)
    vs = res["rows"][1]["versus_baseline"]
    assert (
        vs["metrics.classifier_fid"]["verdict"] == "helps"
        and vs["metrics.power_spectrum_db_high"]["verdict"] == "hurts"
    )
    assert res["versus_baseline"]["better_from_grid"] == list(better)
    assert "| classifier_fid (higher, grid) |" in (grid["out"] / "results.md").read_text()


@pytest.mark.parametrize(
    "keys, error",
    [
        ({"better": {"metrics.inception_score": "up"}},
         "better: metrics.inception_score: 'up' is not allowed; allowed: higher, lower"),
        ({"better": {"metrics.fad": "lower"}},
         "better: metrics.fad is not a report key; report: metrics.inception_score"),
        ({"better": ["metrics.inception_score"]}, "better must be a mapping {metrics.KEY: higher|lower}"),
        ({"alpha": 1.5}, "alpha must be a number in (0, 1) (the tests' level), got 1.5"),
        ({"alpha": True}, "alpha must be a number in (0, 1)"),
    ],
)  # fmt: skip
def test_a_bad_better_or_alpha_is_a_one_line_error_naming_the_key(tmp_path, keys, error):
    with pytest.raises(SystemExit, match="grid.yaml: " + error.replace("(", r"\(").replace(")", r"\)")
                       .replace("{", r"\{").replace("}", r"\}").replace("|", r"\|")):  # fmt: skip
        _scored_grid(tmp_path, {"inception_score": SCORES["inception_score"]}, **keys)


def test_alpha_sets_the_level_of_the_verdicts(tmp_path):
    grid, cells = _scored_grid(tmp_path, {"inception_score": SCORES["inception_score"]}, alpha=0.1)
    res = ablate.report(grid, cells)
    assert res["rows"][3]["versus_baseline"]["metrics.inception_score"]["verdict"] == "helps"  # adjusted p 0.067
    assert "verdict at alpha 0.1\n" in (grid["out"] / "results.md").read_text()
    with pytest.raises(SystemExit, match="^--set: alpha must be a number in"):
        ablate.load_grid(tmp_path / "grid.yaml", ablate.grid_sets(["alpha=0"]))


def test_one_seed_per_group_or_no_baseline_reports_why_there_is_no_comparison(tmp_path):
    one = {"inception_score": {g: v[:1] for g, v in SCORES["inception_score"].items()}}
    grid, cells = _scored_grid(tmp_path, one, seeds=(0,))
    res = ablate.report(grid, cells)
    why = "a t-test needs at least 2 seeds in each group, and every group has 1 seed"
    assert res["versus_baseline"]["absent"] == why and not any("versus_baseline" in r for r in res["rows"])
    md = (grid["out"] / "results.md").read_text()
    assert f"\nversus the baseline: no comparison ({why})\n" in md and "| amp | 0.1 | 1 | 7 (1 seed) |" in md
    res = ablate.report(grid, [c for c in cells if c["variant"] == "amp"])  # --only amp
    assert res["versus_baseline"]["absent"] == "no baseline: no group without a regularizer among those reported"


def test_the_holm_family_and_the_no_p_lines_count_only_the_groups_with_a_p(tmp_path):
    """A group with one seed has no p: Holm runs over the others (the header says how many), and one short line
    per reason names the groups without a p (was: every (group, metric) pair, and the header counted all)."""
    from scipy import stats

    scores = {m: SCORES[m] for m in ("inception_score", "classifier_fid")}
    grid, cells = _scored_grid(tmp_path, scores)
    res = ablate.report(grid, [c for c in cells if c["group"] != "amp_lam0.001" or c["seed"] == 0])
    rows = {r["group"]: r for r in res["rows"]}
    raw = [stats.ttest_ind(SCORES["inception_score"][g], SCORES["inception_score"]["baseline"], equal_var=False)
           .pvalue for g in ("amp_lam0.1", "amp_lam0.01")]  # fmt: skip
    got = [rows[g]["versus_baseline"]["metrics.inception_score"]["p_holm"] for g in ("amp_lam0.1", "amp_lam0.01")]
    assert got == pytest.approx([2 * raw[0], raw[1]], rel=1e-12)  # m = 2, not 3
    md = (grid["out"] / "results.md").read_text()
    assert "(3 seeds per group but amp_lam0.001 1); Holm-Bonferroni over the 2 groups with a p, per metric" in md
    assert (
        "\n- no p for amp_lam0.001 (every metric): 1 value against the baseline's 3 (a t-test needs 2 a side)\n" in md
    )
