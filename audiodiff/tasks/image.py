"""The image task: pictures (B, C, H, W) in [-1, 1], optionally class-conditional."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from audiodiff.data.datasets import ImageArrays
from audiodiff.tasks.base import Task


def to_uint8(images: Tensor):
    """(N, C, H, W) in [-1, 1] -> numpy uint8 (N, H, W, C)."""
    return ((images.float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def image_grid(images: Tensor, path: Path, cols: int = 8) -> None:
    """Save up to 64 images as one PNG grid."""
    from PIL import Image

    pics = to_uint8(images[:64])
    n, h, w, c = pics.shape
    rows = -(-n // cols)
    grid = np.zeros((rows * (h + 2), min(n, cols) * (w + 2), c), np.uint8)
    for i, pic in enumerate(pics):
        r, col = divmod(i, cols)
        grid[r * (h + 2) : r * (h + 2) + h, col * (w + 2) : col * (w + 2) + w] = pic
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid[..., 0] if c == 1 else grid).save(path)


class ImageTask(Task):
    """Images of data.train (images.npy, labels.npy from the image corpora) of shape data.image_shape.

    With model.unet.num_classes the model is class-conditional: sample k gets class seed_k mod classes.
    """

    networks = ("unet",)
    suffix = ".png"

    def examples(self):
        images = ImageArrays(self.cfg.data.train)
        if list(images.images.shape[1:]) != list(self.cfg.data.image_shape):
            raise ValueError(
                f"task=image needs data.image_shape={list(images.images.shape[1:])} (the data's (C, H, W)); "
                f"got image_shape={list(self.cfg.data.image_shape)}"
            )
        return images

    def to_model(self, batch):
        x0 = batch["x"].to(self.device, non_blocking=True)
        return x0, self.batch_labels(batch)

    def shape(self, cond=None):
        return tuple(self.cfg.data.image_shape)

    def decode(self, x, seeds):
        return x.clamp(-1, 1)

    def write(self, out, names, outputs):
        from PIL import Image

        paths = [out / f"{name}{self.suffix}" for name in names]
        for path, pic in zip(paths, to_uint8(outputs)):
            Image.fromarray(pic[..., 0] if pic.shape[-1] == 1 else pic).save(path)
        return paths

    def summarize(self, out, paths, outputs, source):
        image_grid(torch.cat([o[None].cpu() for o in outputs]), out / "grid.png")
        labels = self.labels([int(p.stem) for p in paths])
        return {"labels": labels.tolist() if labels is not None else None}

    def log_samples(self, writer, out, seeds, outputs, step):
        image_grid(outputs, out / "grid.png")
        writer.add_images("samples/images", (outputs.float().cpu() + 1) / 2, step)
