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
from audiodiff.eval.embeddings import ABOUT
from audiodiff.eval.evaluate import evaluate
from tests.conftest import on_a_full_disk, write_corpus
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
    assert len(parser.sources["audio"]) == 6 and len(parser.sources["img"]) == 7  # 6 spectrograms, 1 colour bar
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


def test_report_html_players_and_images_load_in_headless_chromium(tmp_path):
    """Open report.html in headless Chromium: every <img> decodes and every <audio> reads its metadata.

    `make test` installs Chromium where it can (root with apt-get); CI sets AUDIODIFF_REQUIRE_BROWSER
    so a missing browser fails there instead of skipping."""
    import os
    import subprocess

    if _chromium() is None:
        if os.environ.get("AUDIODIFF_REQUIRE_BROWSER"):
            pytest.fail("AUDIODIFF_REQUIRE_BROWSER is set but no Chromium is installed (make browser)")
        pytest.skip("no Chromium installed (make browser installs it as root)")

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
    assert "img 7/7 audio 6/6" in dom, dom[-500:]  # 6 spectrograms and their colour bar


# ----------------------------------------------------------- a report worth sharing (issue 17)


def _run(root, ref_rate=16000):
    """A run dir as train + generate leave it: config.yaml, generated/ with 12 clips and settings.json;
    and a reference data dir of 3 speakers x 2 words (utt2spk, utt2label)."""
    rng = np.random.default_rng(5)
    run, ref = root / "exp" / "amp", root / "data" / "test"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(
        "name: amp\ntask: waveform\ndiffusion: {kind: ddpm, prediction: eps}\n"
        "regularizer: {lam: 0.0001, weighting: unweighted, losses: [{name: amp}]}\n"
    )
    for i in range(12):
        write_wav(run / "generated", str(i), 0.1 * noise_band(rng, 4000, 100, 3000, rate=8000), rate=8000)
    settings = {"complete": True, "checkpoint": str(run / "checkpoints"), "step": 1234, "weights": "ema",
                "sampler": "ddim", "steps": 6, "sampler_settings": {"steps": 6, "eta": 0.5}, "sample_rate": 8000,
                "commit": "abc1234", "files": [f"{i}.wav" for i in range(12)]}  # fmt: skip
    (run / "generated" / "settings.json").write_text(json.dumps(settings))
    ref.mkdir(parents=True)
    utts = [f"spk{s}_{w}" for s in "abc" for w in ("one", "two")]
    for k, utt in enumerate(utts):
        write_wav(root / "wav", utt, 0.3 * noise_band(rng, ref_rate // 2, 100 + 50 * k, 3000, rate=ref_rate), ref_rate)
    (ref / "wav.scp").write_text("".join(f"{u} {root / 'wav' / u}.wav\n" for u in utts))
    (ref / "utt2spk").write_text("".join(f"{u} {u[:4]}\n" for u in utts))
    (ref / "utt2label").write_text("".join(f"{u} {u[5:]}\n" for u in utts))
    return run, ref


def _cells(page, tag="td"):
    return [re.sub(r"<[^>]+>", "", c) for c in re.findall(rf"<{tag}[^>]*>(.*?)</{tag}>", page, re.S)]


def test_report_says_what_was_compared_with_directions_floor_plots_and_clips_in_order(tmp_path):
    run, ref = _run(tmp_path)
    kw = dict(metrics=["fad", "mean_spectrum"], embedder="melstats", cache_dir=tmp_path / "c")
    evaluate(ref, ref, tmp_path / "floor", **kw)
    rep = evaluate(ref, run / "generated", run / "eval", floor=tmp_path / "floor", **kw)
    assert rep["run"] == {"run": "amp", "checkpoint": str(run / "checkpoints"), "step": 1234, "task": "waveform",
                          "diffusion": "ddpm (eps)", "regularizer": "amp, lambda 0.0001 (unweighted)",
                          "sampler": "ddim, 6 steps, eta=0.5", "weights": "ema", "sample_rate": 8000,
                          "commit": "abc1234"}  # fmt: skip
    page = (run / "eval" / "report.html").read_text()
    context = dict(zip(_cells(page, "th")[2:16], _cells(page.split("<h2>Metrics")[0].split("</tr>", 1)[1])))
    assert context["step"] == "1234" and context["regularizer"] == "amp, lambda 0.0001 (unweighted)"
    assert context["sampler"] == "ddim, 6 steps, eta=0.5" and context["training commit"] == "abc1234"
    assert f"{run / 'generated'} (12 clips)" in page and f"{ref} (6 clips)" in page and ABOUT["melstats"] in page
    metrics = page.split("<h2>Metrics")[1].split("<h2>")[0]
    floor = rep["floor"]["metrics"]["fad_melstats"]
    assert re.search(rf"fad_melstats</th><td class=dir>&darr; lower</td><td>[^<]+</td><td>{floor:.4g}</td>", metrics)
    assert page.count('alt="mean spectrum of amp"') == 1 and page.count('alt="octave bands of amp"') == 1
    rows = re.findall(r"<tr><th>(\d+)</th>", page)
    assert rows == ["0", "1", "2", "3", "4", "5", "6", "7"]  # natural order; was 0, 1, 10, 11, ...
    refs = re.findall(r'<div class="name">(spk\w+)\.wav', page)
    assert refs[:3] == ["spka_one", "spkb_two", "spkc_one"]  # every speaker, and both words, first
    assert "drawn across 3 of 3 speakers" in page


def test_spectrograms_share_one_colour_scale(tmp_path):
    """A clip 40 dB quieter looks darker (each was scaled on its own, so both looked the same)."""
    from PIL import Image

    from audiodiff.eval.plots import spectrogram_uris

    noise = noise_band(np.random.default_rng(0), 16000, 100, 7000, rate=16000)
    uris, colorbar = spectrogram_uris([(0.5 * noise, 16000), (0.005 * noise, 16000)])

    def brightness(uri):
        image = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("L"), float)
        return image[20:-40, 60:-20].mean()  # the plot area, inside the axes

    assert brightness(uris[0]) > brightness(uris[1]) + 40 and colorbar.startswith("data:image/png;base64,")


def test_natural_order():
    from audiodiff.eval.report import natural_key

    names = ["10", "2", "1", "spk2_one", "spk10_one", "0"]
    assert sorted(names, key=natural_key) == ["0", "1", "2", "10", "spk2_one", "spk10_one"]


def test_report_command_puts_runs_side_by_side_aligned_by_utterance(tmp_path):
    """Vocoder-style sets (generated names = reference utterances): one row per utterance, both runs
    and the reference of that same utterance; the better value of each metric in bold."""
    _, ref = _run(tmp_path)
    gens = {}
    for name, gain in (("base", 0.9), ("amp", 0.5)):
        gens[name] = tmp_path / name / "gen"
        gens[name].parent.mkdir()
        for wav in sorted((tmp_path / "wav").glob("*.wav")):
            data, rate = sf.read(wav)
            write_wav(gens[name], wav.stem, gain * data, rate)
        evaluate(ref, gens[name], tmp_path / name / "eval", metrics=["mrstft", "mean_spectrum"])
    page = tmp_path / "compare.html"
    res = CliRunner().invoke(main, ["report", str(tmp_path / "base" / "eval"), str(tmp_path / "amp" / "eval"),
                                    "--out", str(page)])  # fmt: skip
    assert res.exit_code == 0, res.output
    html_text = page.read_text()
    assert "<th>base</th><th>amp</th><th>reference (the same utterances)</th>" in html_text
    first = html_text.split("<tr><th>spka_one</th>")[1].split("</tr>")[0]
    assert re.findall(r'<div class="name">([\w.]+) ', first) == ["spka_one.wav"] * 3
    mrstft = re.search(r"<th>mrstft</th>.*?</tr>", html_text).group(0)
    assert re.search(r"</td><td class=best>[^<]+</td><td>[^<]+</td><td>-</td></tr>", mrstft)  # base: 0.9x is closer
    res = CliRunner().invoke(main, ["report", str(tmp_path), "--out", str(page)])
    assert res.exit_code == 1 and "no metrics.json" in res.output and len(res.output.strip().splitlines()) == 1


def test_clip_rows_align_by_shared_names_else_row_by_row(tmp_path):
    from audiodiff.eval.report import RunView, clip_rows

    def run(*names):
        return RunView("r", {}, tmp_path, {n: f"{n}.wav" for n in names})

    assert clip_rows([run("0", "1", "2"), run("1", "2", "10")], 8) == (["1", "2"], [["1.wav"] * 2, ["2.wav"] * 2], True)
    labels, rows, aligned = clip_rows([run("0", "1"), run("spk_a", "spk_b", "spk_c")], 8)
    assert not aligned and labels == ["#1", "#2", "#3"] and rows[0] == ["0.wav", "spk_a.wav"] and rows[2][0] is None


def test_a_full_disk_leaves_the_previous_metrics_json_whole(tmp_path):
    old = {"metrics": {"fad": 1.0}}
    (tmp_path / "metrics.json").write_text(json.dumps(old))
    report = {"metrics": {"fad": 2.0}, "settings": {"files": [f"clip_{k:05d}.wav" for k in range(400)]}}  # ~8 kB
    code = (
        "from pathlib import Path\nfrom audiodiff.eval.report import write_metrics\n"
        f"write_metrics(Path({str(tmp_path)!r}), {report!r}, 'header')"
    )
    out = on_a_full_disk(code)
    assert json.loads((tmp_path / "metrics.json").read_text()) == old
    assert "OSError" in out and "metrics.json" in out, out
    assert "| fad | 2 |" in (tmp_path / "metrics.md").read_text()  # the small table was written


def test_finished_evaluation_treats_a_truncated_or_foreign_metrics_json_as_missing(tmp_path):
    from audiodiff.eval.context import finished_evaluation, read_floor

    said = []
    assert finished_evaluation(tmp_path, said.append) is None and said == []  # none yet: nothing to say
    (tmp_path / "metrics.json").write_text('{"metrics": {"fad": 1.')
    assert finished_evaluation(tmp_path, said.append) is None
    assert said and "metrics.json: not JSON" in said[0] and "treated as missing" in said[0]
    with pytest.raises(ValueError, match="--floor .*metrics.json: not JSON"):
        read_floor(tmp_path)  # a floor is given by hand: an error naming it, not a traceback
    (tmp_path / "metrics.json").write_text("[1, 2]")
    assert finished_evaluation(tmp_path, said.append) is None and "no 'metrics' table" in said[1]
    (tmp_path / "metrics.json").write_text('{"metrics": {"fad": 1.5}}')
    assert finished_evaluation(tmp_path, said.append) == {"metrics": {"fad": 1.5}}


def test_a_signed_band_error_is_best_closest_to_zero(tmp_path):
    """band_psd's psd_band<i>_err_db is signed (+ excess, - deficit): 0 is best, not the most negative."""
    from audiodiff.eval.report import RunView, _metrics, write_metrics

    values = {"a": (-6.0, 3.0), "b": (0.5, 1.0), "c": (2.0, 2.0)}
    runs = [RunView(n, {"metrics": {"psd_band7_err_db": e, "psd_band_rms_db": r}}, tmp_path, {}) for n, (e, r) in
            values.items()]  # fmt: skip
    table = _metrics(runs, None)
    signed = re.search(r"<th>psd_band7_err_db</th>.*?</tr>", table).group(0)
    assert "&rarr; 0 closest" in signed and re.findall(r"<td class=best>([^<]+)</td>", signed) == ["0.5"]
    rms = re.search(r"<th>psd_band_rms_db</th>.*?</tr>", table).group(0)
    assert "&darr; lower" in rms and re.findall(r"<td class=best>([^<]+)</td>", rms) == ["1"]
    write_metrics(tmp_path, runs[0].report, "# a")
    text = (tmp_path / "metrics.md").read_text()
    assert "| psd_band7_err_db | -6 | closest to 0 is better |" in text and "| psd_band_rms_db | 3 | lower" in text
