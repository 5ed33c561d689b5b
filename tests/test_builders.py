"""Registries and builders (audiodiff/builders.py)."""

import pytest
from omegaconf import OmegaConf

from audiodiff.builders import SAMPLER_PLANS, build_formulation, build_network
from audiodiff.config import ExperimentConfig, from_yaml, load_config, to_yaml
from audiodiff.diffusion import EDM


def test_build_network_with_an_unknown_kind_is_a_one_line_error():
    cfg = OmegaConf.structured(ExperimentConfig(name="t"))
    cfg.model.kind = "unet"
    assert type(build_network(cfg)).__name__ == "UNet"
    plain = ExperimentConfig(name="t")  # not validated: the builder itself must refuse
    plain.model.kind = "wavenet"
    with pytest.raises(
        ValueError, match=r"^model.kind='wavenet' is not allowed; choose one of \['diffwave', 'unet'\]$"
    ):
        build_network(plain)
    plain.diffusion.kind = "flow"
    with pytest.raises(ValueError, match=r"diffusion.kind='flow' is not allowed; choose one of \['ddpm', 'edm'\]"):
        build_formulation(plain)


def test_sampler_plans_refuse_what_the_formulation_cannot_do():
    cfg = ExperimentConfig(name="t")
    with pytest.raises(ValueError, match="sampler 'fast' needs a DDPM model"):
        SAMPLER_PLANS["fast"](cfg.sample, EDM(), 6)


def test_build_network_resolves_auto_and_keeps_stored_choices():
    cfg = OmegaConf.structured(ExperimentConfig(name="t"))  # not through load_config: "auto" is unresolved
    assert build_network(cfg).config.embed_interp == "lerp"
    cfg.diffusion.kind = "edm"
    assert build_network(cfg).config.embed_interp == "exact"
    cfg.diffusion.kind, cfg.model.diffwave.embed_interp = "ddpm", "exact"  # as an old checkpoint stores it
    assert build_network(from_yaml(to_yaml(cfg))).config.embed_interp == "exact"


def test_a_stored_config_rebuilds_the_wave_cond_its_cond_waveform_sets():
    """model.diffwave.wave_cond has one source, config validation (load_config / from_yaml): a checkpoint's
    config from before data.cond_waveform builds the mel-only network, a Griffin-Lim vocoder's one channel more."""
    voc = ["name=x", "data.train=/d", "task=vocoder", "model.diffwave.n_mels=80", "model.diffwave.hop=128"]
    voc += ["model.diffwave.layers=1", "model.diffwave.channels=2"]
    for extra, want in (([], 0), (["data.cond_waveform=griffin_lim"], 1)):
        stored = OmegaConf.to_container(load_config(None, [*voc, *extra]))
        assert stored["model"]["diffwave"]["wave_cond"] == want  # what a checkpoint records
        net = build_network(from_yaml(to_yaml(OmegaConf.create(stored))))
        assert net.config.wave_cond == want and net.layers[0].cond_proj.in_channels == 80 + want
        del stored["model"]["diffwave"]["wave_cond"]  # a config written before the key existed
        if not extra:
            del stored["data"]["cond_waveform"]
        assert build_network(from_yaml(to_yaml(OmegaConf.create(stored)))).config.wave_cond == want
