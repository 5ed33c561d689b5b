"""The image task end to end through the CLI: class-conditional EDM with a weighted AMP regularizer."""

import json

from tests.conftest import run_cli


def test_image_path_class_conditional_edm_with_weighted_amp(tmp_path, config):
    from audiodiff.data.corpora import prepare

    prepare("checkerboard", str(tmp_path / "cb"), {"n": "40", "size": "16"})
    exp = tmp_path / "exp"
    args = [
        "train",
        config,
        "--no-progress",
        "name=img",
        f"exp_dir={exp}",
        f"data.train={tmp_path}/cb/data/train",
        "data.kind=images",
        "data.image_shape=[1,16,16]",
        "model.kind=unet",
        "model.unet.channels=8",
        "model.unet.channel_mult=[1,2]",
        "model.unet.attn_levels=[1]",
        "model.unet.num_res_blocks=1",
        "model.unet.num_classes=5",
        "model.unet.label_dropout=0.2",
        "model.unet.embedding=fourier",
        "diffusion.kind=edm",
        "sample.sampler=heun",
        "sample.steps=3",
        "train.steps=2",
        "train.batch_size=4",
        "train.ckpt_every=2",
        "train.sample_every=2",
        "regularizer.lam=0.1",
        "regularizer.weighting=weighted",
        "regularizer.losses=[{name: amp, kwargs: {norm: ortho, reduction: mean}}]",
    ]
    res = run_cli(*args)
    assert res.exit_code == 0, res.output
    assert (exp / "img" / "samples" / "step_00000002" / "grid.png").is_file()
    out = tmp_path / "png"
    res = run_cli("generate", "--ckpt", exp / "img", "--seeds", "0-6", "--out", out, "--device", "cpu")
    assert res.exit_code == 0, res.output
    settings = json.loads((out / "settings.json").read_text())
    assert settings["labels"] == [0, 1, 2, 3, 4, 0, 1] and len(list(out.glob("[0-9]*.png"))) == 7
    from PIL import Image

    assert Image.open(out / "3.png").size == (16, 16)
    # a release carries the guidance chosen at export as its default, and says so on its card
    rel = tmp_path / "rel" / "img"
    assert run_cli("export", exp / "img", "--out", rel, "--guidance", "2").exit_code == 0
    assert (
        "class-conditional (file k: class seed_k mod 5), classifier-free guidance w = 2"
        in rel.with_suffix(".md").read_text()
    )
    res = run_cli("generate", "--ckpt", rel.with_suffix(".safetensors"), "--seeds", "0-1", "--out", tmp_path / "g2")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "g2" / "settings.json").read_text())["guidance"] == 2.0
    bad = [a for a in args if not str(a).startswith("data.image_shape")] + ["data.image_shape=[1,32,32]"]
    res = run_cli(*[a if not str(a).startswith("name=") else "name=bad" for a in bad])
    assert res.exit_code != 0 and "data.image_shape=[1, 16, 16]" in res.output
