"""Importable corpus recipes: `audiodiff prepare <corpus>` after `pip install`."""

from __future__ import annotations

from collections.abc import Callable


def _digits(**kwargs):
    from audiodiff.data.corpora.digits import prepare_digits

    return prepare_digits(**kwargs)


CORPORA: dict[str, Callable[..., dict]] = {"digits": _digits}
