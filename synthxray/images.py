"""Small image helpers: grids of PIL images."""

from __future__ import annotations

from typing import Sequence

from PIL import Image, ImageDraw


def image_grid(images: Sequence[Image.Image], ncols: int, labels: Sequence[str] | None = None, pad: int = 2) -> Image.Image:
    """Tile images in rows of ``ncols``; ``labels`` (one per row) are written at each row's left."""
    if not images:
        raise ValueError("no images to tile")
    from .pixels import to_8bit

    images = [to_8bit(im) for im in images]  # 16-bit and float images by the one pixel rule
    w, h = images[0].size
    nrows = (len(images) + ncols - 1) // ncols
    left = 0
    if labels:
        left = max(8 * max(len(s) for s in labels), 1) + 2 * pad
    mode = "L" if all(im.mode == "L" for im in images) else "RGB"
    grid = Image.new(mode, (left + ncols * (w + pad) + pad, nrows * (h + pad) + pad), color=255)
    for i, im in enumerate(images):
        r, c = divmod(i, ncols)
        grid.paste(im.convert(mode), (left + pad + c * (w + pad), pad + r * (h + pad)))
    if labels:
        draw = ImageDraw.Draw(grid)
        for r, text in enumerate(labels[:nrows]):
            draw.text((pad, pad + r * (h + pad) + h // 2 - 5), text, fill=0)
    return grid


def class_grid(generator, per_class: int = 8, seed: int = 0, **settings) -> Image.Image:
    """One row of ``per_class`` samples for every class of a generator."""
    images = []
    for name in generator.class_names:
        images.extend(generator.generate(per_class, class_label=name, seed=seed, batch_size=per_class, **settings))
    return image_grid(images, per_class, labels=generator.class_names)
