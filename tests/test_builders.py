"""Registries and builders (audiodiff/builders.py)."""

import pytest
from omegaconf import OmegaConf

from audiodiff.builders import SAMPLER_PLANS, build_formulation, build_network
from audiodiff.config import ExperimentConfig, from_yaml, to_yaml
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
