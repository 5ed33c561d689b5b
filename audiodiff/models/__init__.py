"""Backbones: DiffWave (1-D waveform) and a DDPM++-style 2-D UNet (mels and images)."""

from audiodiff.models.diffwave import DIFFWAVE_PRESETS, DiffWave, DiffWaveConfig
from audiodiff.models.unet import UNet, UNetConfig

__all__ = ["DIFFWAVE_PRESETS", "DiffWave", "DiffWaveConfig", "UNet", "UNetConfig"]
