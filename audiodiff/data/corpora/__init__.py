"""Importable corpus recipes: `audiodiff prepare <corpus> --out DIR [option=value ...]` after `pip install`."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

# corpus -> (module, function)
_CORPORA = {
    "digits": ("audiodiff.data.corpora.digits", "prepare_digits"),
    "sc09": ("audiodiff.data.corpora.sc09", "prepare_sc09"),
    "ljspeech": ("audiodiff.data.corpora.ljspeech", "prepare_ljspeech"),
    "mnist": ("audiodiff.data.corpora.images", "prepare_mnist"),
    "checkerboard": ("audiodiff.data.corpora.images", "prepare_checkerboard"),
    "cifar10": ("audiodiff.data.corpora.images", "prepare_cifar10"),
}
CORPORA = tuple(_CORPORA)


def corpus_function(name: str) -> Callable[..., dict]:
    if name not in _CORPORA:
        raise ValueError(f"unknown corpus {name!r}; choose one of {sorted(_CORPORA)}")
    module, func = _CORPORA[name]
    return getattr(importlib.import_module(module), func)


def prepare(name: str, out: str, options: dict[str, str]) -> dict:
    """Run a corpus's prepare function with `option=value` strings converted to its parameter types."""
    func = corpus_function(name)
    params = {p.name: p for p in inspect.signature(func).parameters.values() if p.name != "out"}
    kwargs = {}
    for key, value in options.items():
        if key not in params:
            raise ValueError(f"{name}: unknown option {key!r}; options: {sorted(params)}")
        default = params[key].default
        try:
            kwargs[key] = type(default)(value) if isinstance(default, (int, float)) else value
        except ValueError:
            raise ValueError(f"{name}: option {key}={value!r} should be a {type(default).__name__}") from None
    return func(out=out, **kwargs)
