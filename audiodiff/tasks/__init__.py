"""Tasks: what is generated (waveforms, vocoded audio, log-mels, images, ...). See base.py."""

from audiodiff.tasks.audio import MelFeaturesTask, MelTask, VocoderTask, WaveformTask
from audiodiff.tasks.base import Job, Task
from audiodiff.tasks.image import ImageTask

__all__ = ["ImageTask", "Job", "MelFeaturesTask", "MelTask", "Task", "VocoderTask", "WaveformTask"]
