"""The archive of an ablation grid (recipes/ablate.py, whose docstring describes it): a finished cell's
record (eval/metrics.json, timing.json, config.yaml, run.yaml with its defaults relative to the grid file,
archived.json) goes to `<archive>/<group>/seed<k>/` (`archive_cell`), and a new machine copies it back into
the cell's run directory instead of running the cell (`restore_cell`), when the record was made with the
config and overrides the grid has now and scored by its classifier (`_check_identity`: the defaults files by
their path in the checkout, or outside it by their content, kept in archived.json, `_identity`; the weights
sha1 that evaluate wrote into the record's metrics.json against the grid's classifier file).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from pathlib import Path

import yaml

# ablate_report lies beside this file (ablate.py puts recipes/ on sys.path)
from ablate_report import _cell_name, _cpu_name, read_json, scored_by

from audiodiff.checkpoint import write_json
from audiodiff.eval.classifier import weights_sha1
from audiodiff.eval.context import finished_evaluation
from audiodiff.release import recorded


def archive_entry(grid: dict, cell: dict) -> Path | None:
    """Where the grid's `archive` keeps the cell's record (<archive>/<group>/seed<k>), None without the key."""
    return grid["archive"] / cell["group"] / f"seed{cell['seed']}" if "archive" in grid else None


CHECKOUT = Path(__file__).resolve().parents[1]  # the repository these recipes (and the grids' configs) are in


def _portable(run_yaml: str, root: Path) -> dict:
    """A cell's run.yaml as the archive keeps it: its `defaults` paths relative to the grid's folder."""
    body = yaml.safe_load(run_yaml) or {}
    body["defaults"] = [os.path.relpath(d, root) if os.path.isabs(d) else d for d in body.get("defaults", [])]
    return body


def _in_checkout(path: Path) -> str | None:
    """`path` (resolved) relative to the checkout, None when it lies outside it."""
    return path.relative_to(CHECKOUT).as_posix() if path.is_relative_to(CHECKOUT) else None


def _content(path: Path, seen: tuple[Path, ...] = ()) -> object:
    """A config file outside the checkout as what it says: its YAML, with its own `defaults` files (relative
    to it) the same way (`_config_id`); a packaged block's name, or an entry that names no file, as written.
    As JSON reads it back (archived.json keeps it: a YAML date is its text)."""
    body = json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))
    if isinstance(body, dict) and isinstance(body.get("defaults"), list) and path not in seen:
        body["defaults"] = [
            _config_id((path.parent / d).resolve(), d, {}, (*seen, path))
            if isinstance(d, str) and (path.parent / d).is_file() else d
            for d in body["defaults"]
        ]  # fmt: skip
    return body


def _config_id(path: Path, written: str, contents: dict, seen: tuple[Path, ...] = ()) -> str | dict:
    """A `defaults` file of a cell (resolved `path`, `written` relative to the grid's folder) as the same on
    any machine: inside the checkout its path in it; outside (where paths differ between machines) its content,
    `contents[written]` when the record keeps it (archived.json's defaults_content), else read from `path`;
    {"file": written} when neither is there (a record's file that is not kept and not here: the grid's own
    file is read, so that record matches no config and is refused)."""
    inside = _in_checkout(path)
    if inside is not None:
        return inside
    if written in contents:
        return {"content": contents[written]}
    try:
        return {"content": _content(path, seen)}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):  # no readable YAML there
        return {"file": written}


def _outside_contents(run_yaml: str, root: Path) -> dict:
    """archived.json's defaults_content: {path relative to the grid's folder: content} of the cell's defaults
    files outside the checkout (another machine has them elsewhere, or not at all)."""
    ids = {d: _config_id((root / d).resolve(), d, {}) for d in _portable(run_yaml, root)["defaults"]}
    return {d: i["content"] for d, i in ids.items() if isinstance(i, dict) and "content" in i}


def _identity(run_yaml: str, overrides: list[str], root: Path, contents: dict | None = None) -> dict:
    """What a cell was trained with, the same on any machine: its run.yaml with each `defaults` file as
    `_config_id` names it (its path in the checkout, or outside it its content: `contents`, a record's
    defaults_content, or the file), and its command-line overrides."""
    body = _portable(run_yaml, root)
    contents = contents if isinstance(contents, dict) else {}
    body["defaults"] = [_config_id((root / d).resolve(), d, contents) for d in body["defaults"]]
    return {"run.yaml": body, "overrides": list(overrides)}


def grid_classifier_sha1(grid: dict) -> str | None:
    """The weights sha1 of the grid's scoring classifier (its folder or one of its files, as `audiodiff
    evaluate --classifier` takes it), as evaluate records it in metrics.json; None without one (no key, or
    no weights file there). Scores are comparable only under the same classifier (one retrained on another
    machine scores the same clips differently)."""
    if "classifier" not in grid:
        return None
    try:
        return weights_sha1(grid["classifier"])
    except FileNotFoundError:
        return None


def _finished(run: Path) -> dict | None:
    """The cell's metrics when it is finished (trained per timing.json, evaluation finished), else None."""
    if not read_json(run / "timing.json", {}).get("train_done"):
        return None
    return finished_evaluation(run / "eval")


def _held(entry: Path) -> dict | None:
    """The archived metrics of a cell, None when the archive does not hold it."""
    return finished_evaluation(entry / "eval") if entry.is_dir() else None


def _incomplete(entry: Path) -> str | None:
    """What a held record lacks beside its metrics (run.yaml, a readable archived.json), None when whole."""
    if not (entry / "run.yaml").is_file():
        return "no run.yaml"
    if not isinstance(read_json(entry / "archived.json", None), dict):
        return "no readable archived.json"
    return None


def archive_cell(cell: dict, grid: dict) -> str | None:
    """Copy a finished cell's record into the grid's archive: eval/metrics.json, timing.json, config.yaml,
    run.yaml (its defaults relative to the grid file) and archived.json (commit, machine, date, overrides, and
    defaults_content: the content of each defaults file outside the checkout, which a restore compares).

    Returns "archived" (written now; also over a held record that lacks run.yaml or archived.json), "same"
    (already held) or "kept" (the archive holds other metrics: it is kept, and a line says so); None without
    an archive, when the cell is not finished, or when it was restored from an entry the archive no longer
    holds (deleted to train the cell anew: not brought back, a line says so). RuntimeError naming the cell
    when the archive cannot be written (read-only)."""
    entry, run = archive_entry(grid, cell), cell["run"]
    metrics = _finished(run) if entry is not None else None
    if metrics is None:
        return None
    held = _held(entry)
    lacks = _incomplete(entry) if held is not None else None
    if held is None and (run / "archived.json").is_file():
        print(
            f"{_cell_name(cell)}: restored from the archive, which no longer holds it ({entry}): not archived "
            f"again (delete {run} to train the cell anew)",
            flush=True,
        )
        return None
    if lacks is not None:
        print(f"{_cell_name(cell)}: the archive {entry} holds an incomplete record ({lacks}); replaced", flush=True)
    elif held is not None:
        if held == metrics:
            return "same"
        print(
            f"{_cell_name(cell)}: {run / 'eval' / 'metrics.json'} differs from the archived {entry}; kept the "
            f"archive (delete {entry} to archive this run instead)",
            flush=True,
        )
        return "kept"
    if (run / "archived.json").is_file():  # restored from an archive: its record says where it was trained
        info = read_json(run / "archived.json", {})
    else:
        commits = recorded(run / "log.txt", "commit")
        info = {
            "group": cell["group"],
            "seed": cell["seed"],
            "commit": commits[-1] if commits else None,  # train's log.txt: one line per start and resume
            "commits": commits,
            "machine": f"{_cpu_name()}, {os.cpu_count()} cores",
            "trained_on": recorded(run / "log.txt", "machine"),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }  # the classifier that scored it is in its metrics.json (older records' classifier_sha256 is ignored)
    info["overrides"] = cell["overrides"]
    info.pop("defaults_content", None)  # a restored record's: read again here (the same files: checked on restore)
    outside = _outside_contents(cell["config"], grid["root"])  # compared by content on restore (`_config_id`)
    if outside:
        info["defaults_content"] = outside
    tmp = entry.parent / f".{entry.name}.tmp"  # written whole, then renamed: a kill leaves no half record
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "eval").mkdir(parents=True)
        shutil.copyfile(run / "eval" / "metrics.json", tmp / "eval" / "metrics.json")
        shutil.copyfile(run / "timing.json", tmp / "timing.json")
        if (run / "config.yaml").is_file():  # train's whole config: the report's steps and batch size
            shutil.copyfile(run / "config.yaml", tmp / "config.yaml")
        body = _portable(cell["config"], grid["root"])
        (tmp / "run.yaml").write_text("# defaults relative to the grid file\n" + yaml.safe_dump(body, sort_keys=False))
        write_json(tmp / "archived.json", info)
        if entry.exists():  # a folder without metrics (not a record) or an incomplete record: replaced
            shutil.rmtree(entry)
        tmp.rename(entry)
    except OSError as err:  # a read-only archive: the cell's run is kept, its record is not written
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(
            f"{_cell_name(cell)}: cannot write its record to the archive {entry} ({err}); make "
            f"{grid['archive']} writable, or run with --set archive=null to go without it"
        ) from None
    return "archived"


def restore_cell(cell: dict, grid: dict) -> bool:
    """Copy the cell's archived record into its run directory when the run has no finished evaluation
    and the archive holds it (a new machine); True when restored. RuntimeError naming the cell when the
    archived record was made with another config than the grid composes now, or lacks run.yaml or
    archived.json, or when it was scored by another classifier than the grid's."""
    entry, run = archive_entry(grid, cell), cell["run"]
    held = _held(entry) if entry is not None and finished_evaluation(run / "eval") is None else None
    if held is None:
        return False
    lacks = _incomplete(entry)
    if lacks is not None:
        raise RuntimeError(
            f"{_cell_name(cell)}: the archive {entry} holds an incomplete record ({lacks}); restore it from git, "
            "or delete it to train the cell anew"
        )
    _check_identity(cell, grid, (entry / "run.yaml").read_text(), read_json(entry / "archived.json", {}), held, entry)
    (run / "eval").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(entry / "archived.json", run / "archived.json")  # first: the cell runs no stage from here on
    (run / "run.yaml").write_text(cell["config"])  # the archived one, with this checkout's paths (same identity)
    for name in ("config.yaml", "timing.json", "eval/metrics.json"):
        if (entry / name).is_file():
            shutil.copyfile(entry / name, run / name)
    print(f"{_cell_name(cell)}: restored from the archive {entry}", flush=True)
    return True


def _check_identity(cell: dict, grid: dict, run_yaml: str, info: dict, metrics: dict | None, where: Path) -> None:
    """RuntimeError naming the cell when a record (its run.yaml, archived.json and eval/metrics.json) was made
    with another config or overrides than the grid composes now, or scored by another classifier than the
    grid's (no check when the record has no classifier block or the grid no classifier file)."""
    archived = _identity(run_yaml, info.get("overrides", cell["overrides"]), grid["root"], info.get("defaults_content"))
    if archived != _identity(cell["config"], cell["overrides"], grid["root"]):
        raise RuntimeError(
            f"{_cell_name(cell)}: the archive {where} was made with another config (run.yaml or overrides differ "
            f"from what the grid composes now); delete that archive entry (and {cell['run']}) to train the cell anew"
        )
    held = scored_by(metrics)
    now = grid_classifier_sha1(grid) if held else None
    if held and now and held != now:
        raise RuntimeError(
            f"{_cell_name(cell)}: the archive {where} was scored with another classifier (weights sha1 "
            f"{held[:12]} in its metrics.json; the grid's {grid['classifier']} is {now[:12]}): point the grid's "
            "classifier at the one that scored it (keep it beside the archive) or delete that archive entry to "
            "score the cell anew"
        )
