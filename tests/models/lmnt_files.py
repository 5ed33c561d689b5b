"""lmnt-com/diffwave checkpoint files for tests: their layout, their params class, or a malicious pickle."""

import contextlib
import os
import pickle
import sys
import types

import torch

from tests.models.test_diffwave import lmnt_style_state

__all__ = ["lmnt_style_state", "save_lmnt_checkpoint", "ShellCommand", "save_legacy_with"]


@contextlib.contextmanager
def their_attrdict():
    """`diffwave.params.AttrDict` as lmnt-com/diffwave 0.1.7 defines it, importable while the block runs."""
    mod = types.ModuleType("diffwave.params")

    class AttrDict(dict):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.__dict__ = self

    AttrDict.__module__, AttrDict.__qualname__ = "diffwave.params", "AttrDict"
    mod.AttrDict = AttrDict
    saved = {name: sys.modules.get(name) for name in ("diffwave", "diffwave.params")}
    sys.modules["diffwave"], sys.modules["diffwave.params"] = types.ModuleType("diffwave"), mod
    try:
        yield AttrDict
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def save_lmnt_checkpoint(path, state, params=None, step=1000, legacy=False):
    """Write `state` (their names) as their learner does: {"step", "model", "optimizer", "params"}."""
    with their_attrdict() as attrdict:
        ckpt = {"step": step, "model": state, "optimizer": {"state": {}, "param_groups": []}}
        ckpt["params"] = attrdict(params or {})
        torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
    return path


class ShellCommand:
    """Unpickling this runs `command` in a shell (what a malicious checkpoint does)."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def save_legacy_with(path, obj, payload, position):
    """A legacy (non-zip) torch file of `obj` whose `position`-th top-level pickle is `payload`.

    Positions: 0 magic number, 1 protocol, 2 system info, 3 storage keys (the main object
    sits between 2 and 3).
    """
    calls = []

    def dump(value, f, **kwargs):
        calls.append(value)
        pickle.dump(payload if len(calls) - 1 == position else value, f, **kwargs)

    module = types.SimpleNamespace(dump=dump, Pickler=pickle.Pickler, __name__="payload")
    torch.save(obj, path, pickle_module=module, _use_new_zipfile_serialization=False)
    return path
