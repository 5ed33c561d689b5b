"""asterisk_en: a fake package of G.722 prompts (encoded here with PyAV), as a folder and as a .deb."""

import builtins
import io
import shutil
import tarfile

import numpy as np
import pytest
import soundfile as sf

from audiodiff.data.corpora import asterisk, prepare
from audiodiff.data.corpora.common import sha256sum
from audiodiff.data.validate import validate_data_dir

av = pytest.importorskip("av")
NAMES = [f"prompt-{i}" for i in range(24)] + ["digits/1", "digits/2", "letters/a"]


def _encode_g722(path, audio):
    with av.open(str(path), "w", format="g722") as container:
        stream = container.add_stream("g722", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray((audio * 32767).astype(np.int16)[None], format="s16", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """An extracted package: tones under en_US_f_Allison/ (one silent prompt) and the copyright file."""
    root = tmp_path_factory.mktemp("pkg")
    t = np.arange(4000) / 16000
    for i, name in enumerate(NAMES):
        path = root / asterisk.SOUNDS / f"{name}.g722"
        path.parent.mkdir(parents=True, exist_ok=True)
        _encode_g722(path, 0.3 * np.sin(2 * np.pi * (200 + 20 * i) * t))
    (root / asterisk.SOUNDS / "silence").mkdir()
    _encode_g722(root / asterisk.SOUNDS / "silence" / "1.g722", np.zeros(4000))
    (root / asterisk.COPYRIGHT).parent.mkdir(parents=True)
    (root / asterisk.COPYRIGHT).write_text("Files: *\nCopyright: Allison Smith\nLicense: CC-BY-SA-3.0\n")
    return root


def _ar(members: dict[str, bytes]) -> bytes:
    out = b"!<arch>\n"
    for name, data in members.items():
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode() + data + b"\n" * (len(data) % 2)
    return out


@pytest.fixture(scope="module")
def deb(package, tmp_path_factory):
    """A .deb-like ar archive (debian-binary, control.tar.xz, data.tar.xz) of the fake package."""
    tars = {}
    for member, add in (("control", lambda t: t.add(package / asterisk.COPYRIGHT, "./control")), ("data", None)):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:xz") as tar:
            (add or (lambda t: t.add(package / "usr", "./usr")))(tar)
        tars[f"{member}.tar.xz"] = buffer.getvalue()
    path = tmp_path_factory.mktemp("deb") / "fake_all.deb"
    path.write_bytes(_ar({"debian-binary": b"2.0\n", **tars}))
    return path


def test_prepare_from_a_folder_writes_audited_data_dirs_with_the_licence(tmp_path, package):
    out = tmp_path / "out"
    summary = prepare("asterisk_en", str(out), {"archive": str(package)})
    parts = {p: (out / "data" / p / "wav.scp").read_text().split()[::2] for p in ("train", "valid", "test")}
    utts = sorted(sum(parts.values(), []))
    assert utts == sorted(n.replace("/", "-") for n in NAMES)  # silence-1 audited out, ids flattened
    assert summary["bad_files"] == 1 and "silence-1\t" in (out / "bad_audio.tsv").read_text()
    assert {p: len(u) for p, u in parts.items()} == summary["utterances"]
    assert all(asterisk.split_of(u) == p for p, us in parts.items() for u in us)
    for part in parts:
        assert validate_data_dir(out / "data" / part).problems == []
        assert "CC-BY-SA-3.0" in (out / "data" / part / "LICENSE").read_text()
    assert "Allison Smith" in (out / "ATTRIBUTION").read_text()
    assert (out / "LICENSE.asterisk").read_text() == (package / asterisk.COPYRIGHT).read_text()
    audio, sr = sf.read(out / "wav" / "digits-1.wav")
    assert sr == 16000 and len(audio) == 4000 and 0.25 < np.abs(audio).max() < 0.35


def test_split_is_a_fixed_function_of_the_id_near_90_5_5():
    ids = [f"utt-{i}" for i in range(4000)]
    splits = [asterisk.split_of(u) for u in ids]
    assert splits == [asterisk.split_of(u) for u in reversed(ids)][::-1]
    pinned = {"activated": "train", "added": "train", "agent-newlocation": "valid", "beeperr": "test"}
    assert {u: asterisk.split_of(u) for u in pinned} == pinned  # real prompt ids, as in egs/asterisk_en
    share = {p: splits.count(p) / len(ids) for p in ("train", "valid", "test")}
    assert abs(share["train"] - 0.9) < 0.02 and abs(share["valid"] - 0.05) < 0.015


@pytest.mark.parametrize("dpkg", [True, False], ids=["dpkg-deb", "ar+tarfile"])
def test_prepare_from_a_deb_checks_the_hash_and_unpacks(tmp_path, deb, monkeypatch, dpkg):
    if dpkg and shutil.which("dpkg-deb") is None:
        pytest.skip("no dpkg-deb here")
    if not dpkg:
        real = shutil.which
        monkeypatch.setattr(shutil, "which", lambda name: None if name == "dpkg-deb" else real(name))
    summary = prepare("asterisk_en", str(tmp_path / "o"), {"archive": str(deb), "sha256": sha256sum(deb)})
    assert sum(summary["utterances"].values()) == len(NAMES) and summary["bad_files"] == 1


def test_a_wrong_hash_or_a_missing_archive_is_one_line(tmp_path, deb):
    with pytest.raises(ValueError, match=r"sha256 mismatch for .*fake_all.deb: expected 0{64}, got [0-9a-f]{64}$"):
        prepare("asterisk_en", str(tmp_path / "a"), {"archive": str(deb), "sha256": "0" * 64})
    with pytest.raises(ValueError, match="sha256 mismatch"):  # the default hash is the real package's
        prepare("asterisk_en", str(tmp_path / "b"), {"archive": str(deb)})
    with pytest.raises(FileNotFoundError, match="archive not found: .*nope.deb"):
        prepare("asterisk_en", str(tmp_path / "c"), {"archive": str(tmp_path / "nope.deb")})
    with pytest.raises(FileNotFoundError, match="no .g722 prompts under"):
        prepare("asterisk_en", str(tmp_path / "d"), {"archive": str(tmp_path)})


def test_without_pyav_the_error_names_the_extra(tmp_path, package, monkeypatch):
    real_import = builtins.__import__

    def no_av(name, *args, **kwargs):
        if name == "av":
            raise ImportError("No module named 'av'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_av)
    with pytest.raises(ImportError, match=r"PyAV: pip install 'audiodiff\[speech\]'"):
        prepare("asterisk_en", str(tmp_path / "o"), {"archive": str(package)})
