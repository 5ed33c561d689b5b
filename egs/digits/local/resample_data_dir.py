#!/usr/bin/env python
"""Copy a Kaldi data dir with its audio resampled (soxr), e.g. the 16 kHz test split at 8 kHz.

    python local/resample_data_dir.py data/digits/data/test data/digits8k/data/test 8000

Writes OUT/wav/*.wav and OUT/wav.scp pointing at them; utt2spk, spk2utt, text and utt2label are
copied. Used by the CPU-scale ablation, whose 8 kHz models are scored against an 8 kHz reference
so that the missing 4-8 kHz band of every model does not dominate the distances.
"""

import shutil
import sys
from pathlib import Path

from audiodiff.audio.io import load_audio, save_audio
from audiodiff.data.kaldi import read_scp


def main(src: str, out: str, sample_rate: str) -> None:
    src_dir, out_dir, sr = Path(src), Path(out), int(sample_rate)
    (out_dir / "wav").mkdir(parents=True, exist_ok=True)
    lines = []
    for utt, path in read_scp(src_dir / "wav.scp").items():  # safe ids, relative paths resolved
        dest = out_dir / "wav" / f"{utt}.wav"
        save_audio(dest, load_audio(path, sr), sr)
        lines.append(f"{utt} {dest.resolve()}")
    (out_dir / "wav.scp").write_text("\n".join(lines) + "\n")
    for name in ("utt2spk", "spk2utt", "text", "utt2label"):
        if (src_dir / name).is_file():
            shutil.copy(src_dir / name, out_dir / name)
    print(f"wrote {len(lines)} utterances at {sr} Hz to {out_dir}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
