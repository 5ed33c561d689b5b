"""lmnt-com/diffwave checkpoints: reading their params, refusing files that run code."""

import pytest
import torch

from audiodiff.models.lmnt import config_from_lmnt_state, load_lmnt_checkpoint
from tests.models.lmnt_files import ShellCommand, lmnt_style_state, save_legacy_with, save_lmnt_checkpoint

PARAMS = {"residual_layers": 2, "residual_channels": 8, "dilation_cycle_length": 1, "hop_samples": 256}


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_load_lmnt_checkpoint_reads_their_params(tmp_path, legacy):
    theirs = lmnt_style_state(layers=2)
    path = save_lmnt_checkpoint(tmp_path / "weights.pt", theirs, PARAMS | {"n_mels": 80}, step=1000578, legacy=legacy)
    model, info = load_lmnt_checkpoint(path)
    assert info["step"] == 1000578 and info["params"]["dilation_cycle_length"] == 1
    # the dilation cycle is not visible in the tensors: it comes from their params
    assert model.config.cycle == 1 and [layer.dilated.dilation[0] for layer in model.layers] == [1, 1]
    torch.testing.assert_close(model.layers[1].dilated.weight, theirs["residual_layers.1.dilated_conv.weight"])


def test_config_from_lmnt_state_checks_params_against_the_tensors():
    theirs = lmnt_style_state(layers=3, channels=8)
    assert config_from_lmnt_state(theirs).cycle == 10  # their default when params say nothing
    with pytest.raises(ValueError, match="params.residual_layers=30 but the weights have layers=3"):
        config_from_lmnt_state(theirs, {"residual_layers": 30})
    with pytest.raises(ValueError, match="params.n_mels=0 but the weights have n_mels=80"):
        config_from_lmnt_state(theirs, {"unconditional": True})


def _malicious(tmp_path, kind, marker):
    payload = ShellCommand(f"touch {marker}")
    benign = {"step": 1, "model": lmnt_style_state(layers=1)}
    path = tmp_path / f"{kind}.pt"
    if kind == "zip":
        torch.save(benign | {"params": payload}, path)
    elif kind == "legacy-object":
        torch.save(benign | {"params": payload}, path, _use_new_zipfile_serialization=False)
    else:  # the top-level pickles torch's legacy reader loads with pickle_module.load
        save_legacy_with(path, benign, payload, {"legacy-magic": 0, "legacy-storage-keys": 3}[kind])
    return path


@pytest.mark.parametrize("kind", ["zip", "legacy-object", "legacy-magic", "legacy-storage-keys"])
def test_malicious_checkpoint_is_refused_without_running_it(tmp_path, kind):
    marker = tmp_path / "MARKER"
    path = _malicious(tmp_path, kind, marker)
    with pytest.raises(Exception) as err:  # the type is checked after the marker
        load_lmnt_checkpoint(path)
    assert not marker.exists(), "the pickled shell command ran"
    message = str(err.value)
    assert err.type is ValueError and "\n" not in message and str(path) in message
    assert "refusing to load posix.system" in message
