"""Small image helpers: labelled grids of PIL images (tiled by diffusers' ``make_image_grid``)."""

from __future__ import annotations

from typing import Sequence

from PIL import Image, ImageDraw, ImageOps


def image_grid(images: Sequence[Image.Image], ncols: int, labels: Sequence[str] | None = None, pad: int = 2) -> Image.Image:
    """Tile images in rows of ``ncols`` (``diffusers.utils.make_image_grid``) on white, ``pad`` pixels apart;
    ``labels`` (one per row) are written at each row's left. All-grayscale input gives a mode "L" grid."""
    from diffusers.utils import make_image_grid

    if not images:
        raise ValueError("no images to tile")
    from .pixels import to_8bit

    images = [to_8bit(im) for im in images]  # 16-bit and float images by the one pixel rule
    w, h = images[0].size
    nrows = (len(images) + ncols - 1) // ncols
    white = (255, 255, 255)
    tiles = [ImageOps.expand(im.convert("RGB"), border=(pad, pad, 0, 0), fill=white) for im in images]
    tiles += [Image.new("RGB", (w + pad, h + pad), white)] * (nrows * ncols - len(tiles))
    grid = make_image_grid(tiles, rows=nrows, cols=ncols)
    left = max(8 * max(len(s) for s in labels), 1) + 2 * pad if labels else 0
    mode = "L" if all(im.mode == "L" for im in images) else "RGB"
    canvas = Image.new(mode, (left + grid.width + pad, grid.height + pad), color=255 if mode == "L" else white)
    canvas.paste(grid.convert(mode), (left, 0))
    if labels:
        draw = ImageDraw.Draw(canvas)
        for r, text in enumerate(labels[:nrows]):
            draw.text((pad, pad + r * (h + pad) + h // 2 - 5), text, fill=0)
    return canvas


def class_grid(generator, per_class: int = 8, seed: int = 0, **settings) -> Image.Image:
    """One row of ``per_class`` samples for every class of a generator."""
    images = []
    for name in generator.class_names:
        images.extend(generator.generate(per_class, class_label=name, seed=seed, batch_size=per_class, **settings))
    return image_grid(images, per_class, labels=generator.class_names)
