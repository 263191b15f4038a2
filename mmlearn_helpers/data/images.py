"""Images: scikit-learn's handwritten digits (target) and digits printed from matplotlib's fonts.

Both come as (n, 8, 8, 1) float32 in [0, 1] with 17 grey levels (k / 16), the format of
scikit-learn's `load_digits` (32x32 binary bitmaps counted in 4x4 blocks).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.ft2font import FT2Font
from scipy import ndimage

from ..checks import check_float, check_int
from .dataset import SPLITS, check_split

# font files shipped inside matplotlib (mpl-data/fonts/ttf): families, weights and styles
FONTS = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf", "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf", "STIXGeneral.ttf",
    "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf", "cmr10.ttf",
    "cmb10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmmi10.ttf",
)
PRINTED_SIZES = {"train": 5000, "val": 1000, "test": 1000}
DIGITS_FRACTIONS = (0.6, 0.2, 0.2)
_CANVAS = 64  # glyph bank resolution
_GRID = 32  # intermediate bitmap, as in the UCI digits preprocessing
_HEIGHT = 30.0  # digit height on the 32x32 bitmap before scale jitter
_STROKES = ("thin", "regular", "bold", "heavy")


@lru_cache(maxsize=1)
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    index = np.arange(len(bunch.target))
    train, rest = train_test_split(
        index, train_size=DIGITS_FRACTIONS[0], stratify=bunch.target, random_state=0
    )
    val, test = train_test_split(rest, train_size=0.5, stratify=bunch.target[rest], random_state=0)
    parts = {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}
    x = (bunch.images / 16.0).astype(np.float32)[..., None]
    return x, bunch.target.astype(np.int64), parts


def handwritten_digits(split: str = "train") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn digits of a fixed stratified 60/20/20 split -> (x, y, index in load_digits)."""
    x, y, parts = _sklearn_digits()
    idx = parts[check_split(split)]
    return x[idx].copy(), y[idx].copy(), idx.copy()


@lru_cache(maxsize=1)
def _glyph_bank() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each (font, digit, stroke) rendered once, centered on a 64x64 canvas.

    Returns bank (fonts, 10, strokes, 64, 64) float32 in [0, 1], and glyph heights and widths
    (fonts, 10, strokes) in canvas pixels.
    """
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    bank = np.zeros((len(FONTS), 10, len(_STROKES), _CANVAS, _CANVAS), dtype=np.float32)
    heights = np.zeros(bank.shape[:3], dtype=np.float32)
    widths = np.zeros(bank.shape[:3], dtype=np.float32)
    for f, name in enumerate(FONTS):
        font = FT2Font(str(folder / name))
        for d in range(10):
            font.set_size(56, 72)
            font.set_text(str(d))
            font.draw_glyphs_to_bitmap(antialiased=True)
            img = np.asarray(font.get_image(), dtype=np.float32) / 255.0
            rows, cols = np.nonzero(img > 0.5)
            img = img[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
            variants = (
                ndimage.grey_erosion(img, size=(3, 3)),
                img,
                ndimage.grey_dilation(img, size=(3, 3)),
                ndimage.grey_dilation(img, size=(5, 5)),
            )
            for s, glyph in enumerate(variants):
                glyph = np.pad(glyph, 2)
                h, w = glyph.shape
                top, left = (_CANVAS - h) // 2, (_CANVAS - w) // 2
                bank[f, d, s, top : top + h, left : left + w] = glyph
                heights[f, d, s], widths[f, d, s] = h - 4, w - 4
    return bank, heights, widths


def _bilinear(bank: np.ndarray, g: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Sample flat glyph bank (G, C, C) at float coordinates (n, H, W) of glyphs g (n,)."""
    y0, x0 = np.floor(ys).astype(np.int64), np.floor(xs).astype(np.int64)
    wy, wx = ys - y0, xs - x0
    out = np.zeros(ys.shape, dtype=np.float32)
    gi = g[:, None, None]
    for dy, dx, w in ((0, 0, (1 - wy) * (1 - wx)), (0, 1, (1 - wy) * wx),
                      (1, 0, wy * (1 - wx)), (1, 1, wy * wx)):
        yy, xx = y0 + dy, x0 + dx
        inside = (yy >= 0) & (yy < _CANVAS) & (xx >= 0) & (xx < _CANVAS)
        vals = bank[gi, np.clip(yy, 0, _CANVAS - 1), np.clip(xx, 0, _CANVAS - 1)]
        out += np.where(inside, vals, 0.0) * w
    return out


def _check_options(**options: float) -> dict[str, float]:
    limits = {"rotation": 90.0, "scale": 0.9, "shift": 0.5, "shear": 1.0, "noise": 1.0,
              "elastic": 8.0, "blur": 3.0}
    return {k: check_float(v, k, low=0, high=limits[k]) for k, v in options.items()}


def _canvas_coordinates(rng: np.random.Generator, n: int, opts: dict, height: np.ndarray,
                        width: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Glyph-canvas (row, column) of every output pixel: the inverse of a seeded jitter.

    The jitter of each sample is shift o zoom o rotate o shear, with an elastic field on top.
    """
    theta = np.deg2rad(rng.uniform(-opts["rotation"], opts["rotation"], n))
    zoom = (_HEIGHT / height) * (1 + rng.uniform(-opts["scale"], opts["scale"], n))
    zoom = np.minimum(zoom, 30.0 / np.maximum(width, 1))  # keep wide glyphs inside
    sh = rng.uniform(-opts["shear"], opts["shear"], n)
    t = rng.uniform(-opts["shift"], opts["shift"], (n, 2)) * _GRID
    grid = np.arange(_GRID) - (_GRID - 1) / 2
    oy = grid[None, :, None] - t[:, 0, None, None]
    ox = grid[None, None, :] - t[:, 1, None, None]
    if opts["elastic"] > 0:
        field = rng.uniform(-1, 1, (n, 2, 4, 4)) * opts["elastic"]
        field = ndimage.zoom(field, (1, 1, _GRID / 4, _GRID / 4), order=1)
        oy, ox = oy + field[:, 0], ox + field[:, 1]
    cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    ry, rx = cos * oy + sin * ox, -sin * oy + cos * ox
    rx = rx - sh[:, None, None] * ry
    center, inv = (_CANVAS - 1) / 2, 1 / zoom[:, None, None]
    return center + ry * inv, center + rx * inv


def render_printed(
    n: int,
    seed: int = 0,
    rotation: float = 12.0,
    scale: float = 0.12,
    shift: float = 0.08,
    shear: float = 0.15,
    stroke: bool = True,
    noise: float = 0.03,
    elastic: float = 0.0,
    blur: float = 0.0,
    quantize: bool = True,
    fonts: tuple[str, ...] = FONTS,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Render n printed digits (class-balanced, seeded) -> (x (n, 8, 8, 1), y, meta).

    Jitter, all drawn uniformly per sample: rotation (max degrees), scale (max relative size
    change), shift (max offset as a fraction of the image), shear (max shear factor), stroke
    (random thin/regular/bold/heavy strokes; False keeps the font's own), elastic (max
    displacement in pixels of the 32x32 bitmap, smooth random field; handwriting-like wobble),
    blur (Gaussian sigma in 8x8 pixels), noise (Gaussian sigma on [0, 1] pixels), quantize
    (round to the 17 grey levels k/16 of scikit-learn's digits).
    """
    check_int(n, "n", low=0)
    unknown = [f for f in fonts if f not in FONTS]
    if unknown or not fonts:
        raise ValueError(f"fonts={fonts!r}; expected a non-empty subset of {FONTS}")
    opts = _check_options(rotation=rotation, scale=scale, shift=shift, shear=shear, noise=noise,
                          elastic=elastic, blur=blur)
    rng = np.random.default_rng(seed)
    bank, heights, widths = _glyph_bank()
    font_ids = np.array([FONTS.index(f) for f in fonts])
    y = rng.permutation(np.arange(n) % 10)
    f = font_ids[rng.integers(0, len(font_ids), n)]
    s = rng.integers(0, len(_STROKES), n) if stroke else np.ones(n, dtype=np.int64)
    glyph = (f * 10 + y) * len(_STROKES) + s
    ry, rx = _canvas_coordinates(rng, n, opts, heights[f, y, s], widths[f, y, s])
    bitmap = _bilinear(bank.reshape(-1, _CANVAS, _CANVAS), glyph, ry, rx) > 0.5
    x = bitmap.reshape(n, 8, 4, 8, 4).mean(axis=(2, 4)).astype(np.float32)
    if opts["blur"] > 0:
        x = ndimage.gaussian_filter(x, sigma=(0, opts["blur"], opts["blur"]))
    if opts["noise"] > 0:
        x = x + rng.normal(0, opts["noise"], x.shape).astype(np.float32)
    x = np.clip(x, 0.0, 1.0)
    if quantize:
        x = np.round(x * 16) / 16
    meta = {"font": np.array(FONTS)[f], "stroke": np.array(_STROKES)[s]}
    return x.astype(np.float32)[..., None], y.astype(np.int64), meta


def printed_digits(
    split: str = "train", seed: int = 0, n: int | None = None, **options
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Printed digits of a split: each split is its own seeded stream (sizes in PRINTED_SIZES)."""
    check_split(split)
    count = PRINTED_SIZES[split] if n is None else n
    stream = np.random.SeedSequence([int(seed), SPLITS.index(split), 8])
    return render_printed(count, seed=int(stream.generate_state(1)[0]), **options)
