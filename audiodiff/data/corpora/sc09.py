"""`sc09`: the digits "zero" .. "nine" of Speech Commands v0.02 (Warden 2018), the SC09 benchmark of
DiffWave and SaShiMi, with the official validation and testing lists.

Downloads speech_commands_v0.02.tar.gz (2.3 GB, checksummed), extracts only the ten digit folders
and the split lists, audits every clip (unreadable, empty, silent and non-finite files are
listed in <out>/bad_audio.tsv and left out) and writes data/{train,valid,test}.
"""

from __future__ import annotations

from pathlib import Path

from audiodiff.data.corpora.common import extract, fetch, finish_audio_corpus

URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
SHA256 = "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
LISTS = ("validation_list.txt", "testing_list.txt")


def prepare_sc09(out: str | Path, url: str = URL, sha256: str = SHA256, archive: str = "") -> dict:
    """Prepare SC09 under `out`; `archive` is a local copy of the tarball (skips the download)."""
    out = Path(out)
    tarball = Path(archive) if archive else fetch(url, out / "download" / Path(url).name, sha256)
    if archive and not tarball.is_file():
        raise FileNotFoundError(f"sc09: archive not found: {tarball}")
    root = out / "speech_commands"
    extract(tarball, root, keep=lambda n: n.lstrip("./") in LISTS or n.lstrip("./").split("/")[0] in DIGITS)
    split_of = {}
    for name, part in zip(LISTS, ("valid", "test")):
        path = root / name
        if not path.is_file():
            raise FileNotFoundError(f"sc09: {name} missing from {tarball}: not a Speech Commands archive?")
        split_of |= {line.strip(): part for line in path.read_text().splitlines() if line.strip()}
    items = []
    for word in DIGITS:
        for wav in sorted((root / word).glob("*.wav")):
            speaker, _, index = wav.stem.partition("_nohash_")
            items.append(
                {
                    "utt": f"{speaker}_{word}_{index}",
                    "spk": speaker,
                    "text": word,
                    "label": DIGITS.index(word),
                    "path": str(wav.resolve()),
                    "split": split_of.get(f"{word}/{wav.name}", "train"),
                }
            )
    if not items:
        raise ValueError(f"sc09: no digit clips found in {tarball}")
    return finish_audio_corpus(out, "sc09", items)
