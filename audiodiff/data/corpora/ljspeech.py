"""`ljspeech`: LJSpeech-1.1 (Ito & Johnson 2017), 13,100 clips of one speaker at 22.05 kHz.

The DiffWave / paper protocol holds out LJ001* and LJ002* as the test set. We also hold out the
first 100 clips of LJ003 as a validation set; the rest is train. Clips are audited (bad files
listed in <out>/bad_audio.tsv and left out); text is the normalized transcript.
"""

from __future__ import annotations

from pathlib import Path

from audiodiff.data.corpora.common import extract, fetch, finish_audio_corpus

URL = "https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2"
SHA256 = "be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5"


def _split(utt: str, valid_ids: set[str]) -> str:
    if utt.startswith(("LJ001", "LJ002")):
        return "test"
    return "valid" if utt in valid_ids else "train"


def prepare_ljspeech(out: str | Path, url: str = URL, sha256: str = SHA256, archive: str = "") -> dict:
    """Prepare LJSpeech under `out`; `archive` is a local copy of the tarball (skips the download)."""
    out = Path(out)
    tarball = Path(archive) if archive else fetch(url, out / "download" / Path(url).name, sha256)
    if archive and not tarball.is_file():
        raise FileNotFoundError(f"ljspeech: archive not found: {tarball}")
    extract(tarball, out)
    root = out / "LJSpeech-1.1"
    meta = root / "metadata.csv"
    if not meta.is_file():
        raise FileNotFoundError(f"ljspeech: {meta} missing: not an LJSpeech-1.1 archive?")
    rows = [line.split("|") for line in meta.read_text(encoding="utf-8").splitlines() if line.strip()]
    valid_ids = set(sorted(r[0] for r in rows if r[0].startswith("LJ003"))[:100])
    items = [
        {
            "utt": r[0],
            "spk": "LJ",
            "text": (r[2] if len(r) > 2 else r[-1]).strip(),
            "path": str((root / "wavs" / f"{r[0]}.wav").resolve()),
            "split": _split(r[0], valid_ids),
        }
        for r in rows
    ]
    return finish_audio_corpus(out, "ljspeech", items)
