"""`asterisk_en`: Debian's `asterisk-core-sounds-en-g722` 1.6.1-1, real studio speech offline.

568 English telephony prompts (about 25.5 minutes), one female studio speaker (Allison Smith),
raw G.722 at 16 kHz wide-band; no transcripts. Licence CC-BY-SA-3.0, attribution required: the
package's copyright file is copied to <out>/LICENSE.asterisk and summarised in <out>/ATTRIBUTION.

Source: `apt-get download asterisk-core-sounds-en-g722` where apt exists (done for you), else
`archive=PATH` to the .deb (checked against its SHA-256) or to a folder it was extracted into
(`dpkg-deb -x`; no checksum to check). Decoding needs PyAV (`audiodiff[speech]`).

Split (fixed, machine-independent): an utterance id is the prompt's path under
`en_US_f_Allison/` with `/` -> `-` and no extension (e.g. `digits-7`); with
h = int(sha256(id)[:8], 16) % 100, h < 90 is train, h < 95 valid, else test (~90/5/5).
Clips are decoded to 16-bit WAV under <out>/wav/ and audited (the `silence/` prompts are
reported silent in <out>/bad_audio.tsv and left out).
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import torch

from audiodiff.audio.io import save_audio
from audiodiff.data.corpora.common import finish_audio_corpus, progress, sha256sum
from audiodiff.extras import install_hint

PACKAGE = "asterisk-core-sounds-en-g722"
VERSION = "1.6.1-1"
SHA256 = "38c5261820b406dcb0ecb37675720da2b0864850690690352ca52707eb623806"  # 10,565,860 bytes
SOUNDS = Path("usr/share/asterisk/sounds/en_US_f_Allison")
COPYRIGHT = Path(f"usr/share/doc/{PACKAGE}/copyright")
SAMPLE_RATE = 16000
ATTRIBUTION = (
    "Asterisk core sound prompts (English, G.722), Debian package {package} {version}.\n"
    "Voice: Allison Smith. Licence: CC-BY-SA-3.0 (https://creativecommons.org/licenses/by-sa/3.0/);\n"
    "full copyright notice in LICENSE.asterisk. Derived files here (16-bit WAV decodes) are under\n"
    "the same licence and must credit Allison Smith / the Asterisk project.\n"
)


def split_of(utt: str) -> str:
    """The fixed split of an utterance id: stable hash of the id, ~90/5/5 train/valid/test."""
    h = int(hashlib.sha256(utt.encode()).hexdigest()[:8], 16) % 100
    return "train" if h < 90 else "valid" if h < 95 else "test"


def _download(dest: Path) -> Path:
    """`apt-get download` the package into `dest` (one line saying how to get it when apt is absent)."""
    deb = dest / f"{PACKAGE}_{VERSION}_all.deb"
    if deb.is_file():
        return deb
    if shutil.which("apt-get") is None:
        raise FileNotFoundError(
            f"asterisk_en: no apt-get here; fetch {PACKAGE}_{VERSION}_all.deb from a Debian mirror "
            f"(pool/main/a/asterisk-core-sounds/) and pass archive=PATH"
        )
    dest.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["apt-get", "download", f"{PACKAGE}={VERSION}"], cwd=dest, capture_output=True, text=True)
    if done.returncode != 0 or not deb.is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"asterisk_en: apt-get download {PACKAGE}={VERSION} failed ({last}); pass archive=PATH")
    return deb


def _ar_members(data: bytes) -> dict[str, bytes]:
    """Members of an ar archive (a .deb is one): name -> bytes."""
    if not data.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive (a .deb starts with '!<arch>')")
    members, pos = {}, 8
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58].decode().strip())
        members[name] = data[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)
    return members


def unpack_deb(deb: Path, into: Path) -> None:
    """Extract a .deb's data into `into`: `dpkg-deb -x` when present, else ar + tarfile."""
    into.mkdir(parents=True, exist_ok=True)
    if shutil.which("dpkg-deb"):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], check=True, capture_output=True)
        return
    members = _ar_members(deb.read_bytes())
    data = [name for name in members if name.startswith("data.tar")]
    if not data:
        raise ValueError(f"asterisk_en: {deb} holds no data.tar.* member (members: {sorted(members)})")
    try:
        tar = tarfile.open(fileobj=io.BytesIO(members[data[0]]))
    except tarfile.CompressionError as err:
        raise ValueError(f"asterisk_en: cannot open {data[0]} in {deb} ({err}); install dpkg-deb") from None
    with tar:
        tar.extractall(into, filter="data")


def decode_g722(path: Path) -> np.ndarray:
    """Mono float32 samples in [-1, 1] of a raw G.722 file (16 kHz), decoded with PyAV."""
    try:
        import av
    except ImportError as err:
        raise ImportError(f"the asterisk_en corpus decodes G.722 with PyAV: {install_hint('speech')}") from err
    with av.open(str(path), format="g722") as container:
        frames = [f.to_ndarray().reshape(-1) for f in container.decode(container.streams.audio[0])]
        rate = container.streams.audio[0].rate
    if rate != SAMPLE_RATE:
        raise ValueError(f"asterisk_en: {path} decodes at {rate} Hz, expected {SAMPLE_RATE}")
    samples = np.concatenate(frames) if frames else np.zeros(0, np.int16)
    return samples.astype(np.float32) / 32768.0


def _source(out: Path, archive: str, sha256: str) -> Path:
    """The extracted package root: `archive` as a folder, or a .deb (checked, then unpacked)."""
    path = Path(archive) if archive else _download(out / "download")
    if path.is_dir():
        return path
    if not path.is_file():
        raise FileNotFoundError(f"asterisk_en: archive not found: {path} (a .deb or an extracted folder)")
    if sha256 and (got := sha256sum(path)) != sha256:
        raise ValueError(f"asterisk_en: sha256 mismatch for {path}: expected {sha256}, got {got}")
    unpack_deb(path, out / "extracted")
    return out / "extracted"


def prepare_asterisk(out: str | Path, archive: str = "", sha256: str = SHA256) -> dict:
    """Prepare the Asterisk prompts under `out`; returns the summary (also <out>/asterisk_en.json).

    Args:
        out: output directory.
        archive: the .deb or an extracted folder; empty: `apt-get download` it.
        sha256: the .deb's expected SHA-256 (empty skips the check; folders are never checked).
    """
    out = Path(out)
    root = _source(out, archive, sha256)
    sounds, copyright_file = root / SOUNDS, root / COPYRIGHT
    prompts = sorted(sounds.rglob("*.g722")) if sounds.is_dir() else []
    if not prompts:
        raise FileNotFoundError(f"asterisk_en: no .g722 prompts under {sounds}: not {PACKAGE}?")
    if not copyright_file.is_file():
        raise FileNotFoundError(f"asterisk_en: {copyright_file} missing: the licence must travel with the data")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(copyright_file, out / "LICENSE.asterisk")
    (out / "ATTRIBUTION").write_text(ATTRIBUTION.format(package=PACKAGE, version=VERSION))
    items = []
    for prompt in progress(None, "decode g722", "file", iterable=prompts):
        utt = "-".join(prompt.relative_to(sounds).with_suffix("").parts)
        wav = out / "wav" / f"{utt}.wav"
        save_audio(wav, torch.from_numpy(decode_g722(prompt)), SAMPLE_RATE)
        items.append({"utt": utt, "spk": "allison", "path": str(wav.resolve()), "split": split_of(utt)})
    for part in ("train", "valid", "test"):
        (out / "data" / part).mkdir(parents=True, exist_ok=True)
        (out / "data" / part / "LICENSE").write_text(ATTRIBUTION.format(package=PACKAGE, version=VERSION))
    return finish_audio_corpus(out, "asterisk_en", items)
