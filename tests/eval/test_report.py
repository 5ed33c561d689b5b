"""report.html: the metrics table and the clips, playable, at their native rates."""

import base64
import io
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from audiodiff.cli import main
from audiodiff.eval.evaluate import evaluate
from tests.conftest import write_corpus
from tests.eval.conftest import RATE, noise_band, write_wav


def test_report_html_holds_playable_audio_and_images(tmp_path):
    import base64
    import io

    import soundfile as sf

    ref = write_corpus(tmp_path / "a", n=3)
    gen = write_corpus(tmp_path / "b", n=3, seconds=0.3)
    for wav in (tmp_path / "b" / "wav").glob("*.wav"):  # the same words at half the amplitude
        data, rate = sf.read(wav)
        sf.write(wav, 0.5 * data, rate)
    out = tmp_path / "eval"
    args = ["evaluate", "--ref", str(ref), "--gen", str(gen), "--out", str(out), "--embedder", "melstats"]
    res = CliRunner().invoke(main, [*args, "--metrics", "fad,mrstft,lsd", "--cache", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output

    class Collect(HTMLParser):
        def __init__(self):
            super().__init__()
            self.sources = {"audio": [], "img": []}

        def handle_starttag(self, tag, attrs):
            if tag in self.sources:
                self.sources[tag].append(dict(attrs)["src"])

    parser = Collect()
    parser.feed((out / "report.html").read_text())
    assert len(parser.sources["audio"]) == 6 and len(parser.sources["img"]) == 6
    audio, sr = sf.read(io.BytesIO(base64.b64decode(parser.sources["audio"][0].split(",", 1)[1])))
    assert sr == 16000 and len(audio) == int(0.3 * 16000)  # the generated clips come first
    assert base64.b64decode(parser.sources["img"][0].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "metrics.json").read_text())
    assert report["n_pairs"] == 3 and report["metrics"]["mrstft"] > 0
    assert report["metrics"]["lsd_db"] > 3  # about 6 dB, plus 16-bit quantization at low levels


def test_report_html_embeds_clips_at_their_native_rates(tmp_path):
    rng = np.random.default_rng(2)
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    write_wav(ref, "a", 0.2 * noise_band(rng, RATE, 50, 10000))
    write_wav(gen, "a", 0.2 * noise_band(rng, 8000, 50, 3900, rate=8000), rate=8000)
    evaluate(ref, gen, tmp_path / "e", metrics=["mrstft"])
    sources = re.findall(
        r'<audio [^>]*src="data:audio/wav;base64,([^"]+)"', (tmp_path / "e" / "report.html").read_text()
    )
    rates = [sf.info(io.BytesIO(base64.b64decode(s))).samplerate for s in sources]
    assert rates == [8000, RATE]  # generated first, then reference; neither resampled to 16 kHz


def _chromium():
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome", "chrome", "headless_shell"):
        if path := shutil.which(name):
            return path
    return None


@pytest.mark.skipif(_chromium() is None, reason="no Chromium installed")
def test_report_html_players_and_images_load_in_headless_chromium(tmp_path):
    """Open report.html in headless Chromium: every <img> decodes and every <audio> reads its metadata."""
    import subprocess

    ref = write_corpus(tmp_path / "r", n=3)
    out = tmp_path / "e"
    evaluate(ref, ref, out, metrics=["fad"], embedder="melstats", cache_dir=tmp_path / "c")
    harness = tmp_path / "harness.html"
    harness.write_text(
        '<html><body><iframe id="f" src="e/report.html"></iframe><pre id="r">pending</pre><script>\n'
        'const f = document.getElementById("f");\n'
        "f.onload = () => setTimeout(() => {\n"
        "  const d = f.contentDocument;\n"
        "  const imgs = [...d.images].filter(i => i.complete && i.naturalWidth > 0).length;\n"
        '  const auds = [...d.querySelectorAll("audio")];\n'
        "  const ok = auds.filter(a => a.readyState >= 1 && a.duration > 0).length;\n"
        '  document.getElementById("r").textContent = `img ${imgs}/${d.images.length} audio ${ok}/${auds.length}`;\n'
        "}, 1500);\n"
        "</script></body></html>"
    )
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
           "--autoplay-policy=no-user-gesture-required", "--virtual-time-budget=10000", "--dump-dom",
           harness.as_uri()]  # fmt: skip
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    assert "img 6/6 audio 6/6" in dom, dom[-500:]
