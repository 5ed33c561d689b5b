"""Speech synthesis with libespeak-ng through ctypes, from the `espeakng-loader` wheel.

espeak-ng is GPL-3.0; `espeakng-loader` is an optional dependency (`pip install audiodiff[digits]`).
The library keeps global state, so one `Espeak` per process, used from one thread.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 0x02
ESPEAK_RATE, ESPEAK_VOLUME, ESPEAK_PITCH, ESPEAK_RANGE = 1, 2, 3, 4
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_INSTANCE: Espeak | None = None


class Espeak:
    """Synthesize text to int16 audio at the library's sample rate (22050 Hz)."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as err:
            raise ImportError(
                "the digits corpus needs espeak-ng: pip install 'audiodiff[digits]' (espeakng-loader, GPL-3.0)"
            ) from err
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.data_path = Path(espeakng_loader.get_data_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, str(self.data_path).encode(), 0)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({rate}) with data at {self.data_path}")
        self.sample_rate = rate
        self._chunks: list[np.ndarray] = []

        def collect(wav, n, events):
            if n > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self._callback = _CALLBACK(collect)  # keep a reference: the library holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)

    def variants(self, deterministic: bool = True) -> list[str]:
        """Names of the voice variants shipped with the data (voices/!v).

        With `deterministic`, variants with breath noise are left out: their noise comes from a
        random source seeded per process (not C rand()), so their audio differs from run to run.
        """
        folder = self.data_path / "voices" / "!v"
        names = sorted(os.listdir(folder))
        if not deterministic:
            return names
        return [n for n in names if not _breathy((folder / n).read_text(errors="replace"))]

    def synth(self, text: str, voice: str, rate: int = 175, pitch: int = 50, pitch_range: int = 50) -> np.ndarray:
        """int16 samples of `text` spoken by `voice` (e.g. 'en-us+Alex'), rate in words/min, pitch 0-99."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        for param, value in ((ESPEAK_RATE, rate), (ESPEAK_PITCH, pitch), (ESPEAK_RANGE, pitch_range)):
            self.lib.espeak_SetParameter(param, int(value), 0)
        self._chunks = []
        data = text.encode()
        err = self.lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, 0, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed ({err}) for {text!r} with {voice!r}")
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


def _breathy(voice_file: str) -> bool:
    for line in voice_file.splitlines():
        parts = line.split()
        if parts and parts[0] in ("breath", "breathw") and any(p.strip("-").isdigit() and int(p) for p in parts[1:]):
            return True
    return False


def espeak() -> Espeak:
    """The process-wide synthesizer."""
    global _INSTANCE
    if _INSTANCE is None:
        _INSTANCE = Espeak()
    return _INSTANCE


def list_variants() -> list[str]:
    """Voice variant names (run in a worker process: it initialises the library)."""
    return espeak().variants()


def synthesize_fresh(jobs: list[tuple[str, str, int, int]]) -> tuple[int, list[np.ndarray]]:
    """Synthesize (text, voice, rate, pitch) jobs in order; meant for a freshly spawned process.

    C rand() is seeded before each utterance: some voices (breathy, klatt) draw noise from it.
    """
    tts = espeak()
    libc = ctypes.CDLL(None)
    out = []
    for k, (text, voice, rate, pitch) in enumerate(jobs):
        libc.srand(k)
        out.append(tts.synth(text, voice, rate, pitch))
    return tts.sample_rate, out
