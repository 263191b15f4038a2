"""Data layer: one entry point, `load_dataset(name, split=..., seed=...)`, returning a Dataset.

Names: "digits" (scikit-learn handwritten, image), "printed_digits" (matplotlib fonts, image),
"spoken_digits" (espeak-ng voices, audio), "av_digits" (image + audio of the same digit),
"avmnist" (real MNIST + Free Spoken Digit Dataset; needs `data_dir` or the download cache),
"text_digits" (the words 0-9 in many languages from num2words, with writing noise; see `text`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..checks import check_choice, check_float, check_seed
from . import audio
from .audio import N_FRAMES, N_MELS, SAMPLE_RATE
from .dataset import SOURCE_SPLIT, SPLITS, Dataset, check_split
from .images import handwritten_digits, printed_digits
from .paired import degrade_images, pair_by_label
from .spoken import languages, playback_clips, shipped, spoken_features
from .text import pair_texts, text_digits, text_vectorizer

DATASETS = ("digits", "printed_digits", "spoken_digits", "av_digits", "avmnist", "text_digits")
_AUDIO_OPTIONS = ("language", "snr_db", "noise", "speed", "pitch", "reverb", "gain_db")
_IMAGE_OPTIONS = ("image_noise", "occlusion")
_TEXT_OPTIONS = ("language", "noise", "n")
_PRINTED_OPTIONS = ("n", "rotation", "scale", "shift", "shear", "stroke", "noise", "elastic",
                    "blur", "quantize", "fonts")
OPTIONS = {
    "digits": _IMAGE_OPTIONS,
    "printed_digits": _PRINTED_OPTIONS,
    "spoken_digits": _AUDIO_OPTIONS,
    "av_digits": _AUDIO_OPTIONS + _IMAGE_OPTIONS + ("text", "text_noise"),
    "avmnist": tuple(a for a in _AUDIO_OPTIONS if a != "language")
    + _IMAGE_OPTIONS + ("reduced", "n", "download", "text", "text_noise"),
    "text_digits": _TEXT_OPTIONS,
}

__all__ = [
    "DATASETS", "N_FRAMES", "N_MELS", "OPTIONS", "SAMPLE_RATE", "SPLITS", "Dataset", "audio",
    "load_dataset", "languages", "playback_clips", "shipped", "text_vectorizer",
    "waveform_features",
]


def waveform_features(
    waves: np.ndarray | list[np.ndarray], rate: int = SAMPLE_RATE, seed: int = 0, **degradations
) -> np.ndarray:
    """Waveforms at any rate >= 8 kHz -> standardized log-mel (n, N_MELS, N_FRAMES, 1).

    Each waveform is resampled, downmixed, trimmed and peak-normalized like the shipped clips;
    `degradations` are those of `audio.degrade` (snr_db, noise, speed, pitch, reverb, gain_db).
    """
    if isinstance(waves, np.ndarray) and waves.ndim == 1:
        raise ValueError(f"waves has shape {waves.shape}; expected a list or an (n, samples) array")
    prepared = [audio.prepare_waveform(w, rate, name=f"waves[{i}]") for i, w in enumerate(waves)]
    z = shipped()
    return audio.log_mel_features(prepared, z["mel_mean"], z["mel_std"], seed=seed, **degradations)


def _split_options(options: dict, keys: tuple[str, ...]) -> dict:
    return {k: options[k] for k in keys if k in options}


def load_dataset(
    name: str,
    *,
    split: str = "train",
    seed: int = 0,
    data_dir: str | Path | None = None,
    **options,
) -> Dataset:
    """Load one split of a data set by name; `seed` drives generation, noise and pairing.

    Images are (n, H, W, 1) float32 in [0, 1]; audio is (n, N_MELS, N_FRAMES, 1) float32 log-mel,
    standardized with the statistics of the speech source's clean voices. Splits are fixed
    (audio by voice, never shared between splits); "spoken_digits" also has split="source", the
    English voices that only the speech source is trained on. Options per name are listed in
    OPTIONS: image degradations (image_noise, occlusion), audio ones (language, snr_db, noise,
    speed, pitch, reverb, gain_db; see `audio.degrade`), printed-digit jitter (see
    `images.render_printed`). "text_digits" gives x["text"], strings (see `text.text_digits`:
    language, noise in [0, 1], n); "av_digits" and "avmnist" with text=True add x["text"], a
    string of each pair's digit in its clip's language (English on AV-MNIST) from the same
    split, with writing noise `text_noise` (`text.with_ids` turns them into model inputs).
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"name={name!r} is not a known dataset; expected one of {DATASETS}")
    check_split(split, (SOURCE_SPLIT, *SPLITS) if name == "spoken_digits" else SPLITS)
    check_seed(seed)
    unknown = sorted(set(options) - set(OPTIONS[name]))
    if unknown:
        raise TypeError(
            f"{unknown} are not options of {name!r}; expected some of {OPTIONS[name]}"
        )
    if name == "text_digits":
        x, y, meta = text_digits(split, seed=seed, **options)
        return Dataset(name, split, {"text": x}, y, meta)
    text_opts = {k: options.pop(k) for k in ("text", "text_noise") if k in options}
    if name == "avmnist":
        from .avmnist import load_avmnist

        pairs = load_avmnist(split=split, seed=seed, data_dir=data_dir, **options)
        return _with_text(pairs, seed, **text_opts)
    image_opts = _split_options(options, _IMAGE_OPTIONS)
    audio_opts = _split_options(options, _AUDIO_OPTIONS)
    if name == "digits":
        x, y, idx = handwritten_digits(split)
        x = degrade_images(x, seed=seed, **image_opts) if image_opts else x
        return Dataset(name, split, {"image": x}, y, {"index": idx})
    if name == "printed_digits":
        x, y, meta = printed_digits(split, seed=seed, **options)
        return Dataset(name, split, {"image": x}, y, meta)
    if name == "spoken_digits":
        x, y, meta = spoken_features(split, seed=seed, **audio_opts)
        return Dataset(name, split, {"audio": x}, y, meta)
    dataset = _av_digits(split, seed, image_opts, audio_opts)
    return _with_text(dataset, seed, **text_opts)


def _with_text(dataset: Dataset, seed: int, text: bool = False, text_noise: float = 0.0
               ) -> Dataset:
    """The pairs as they are, or with x["text"]: per pair a string of its digit in its clip's
    language (English for AV-MNIST, whose FSDD recordings are English)."""
    check_choice(text, "text", (False, True))
    text_noise = check_float(text_noise, "text_noise", low=0, high=1)
    if text_noise and not text:
        raise ValueError(f"text_noise={text_noise!r} acts on x['text'] only; expected text=True")
    if not text:
        return dataset
    language = dataset.meta.get("language", np.full(dataset.n, "en"))
    strings, meta = pair_texts(dataset.y, language, dataset.split, noise=text_noise, seed=seed)
    return Dataset(dataset.name, dataset.split, dataset.x | {"text": strings}, dataset.y,
                   dataset.meta | {f"text_{k}": v for k, v in meta.items()})


def _av_digits(split: str, seed: int, image_opts: dict, audio_opts: dict) -> Dataset:
    """Handwritten images of a split, each paired with a same-digit clip of the same audio split."""
    from .spoken import clip_meta, select

    x_img, y, idx = handwritten_digits(split)
    x_img = degrade_images(x_img, seed=seed, **image_opts)
    language = audio_opts.pop("language", "en")
    z = shipped()
    clip_idx = select(split, language)
    chosen = clip_idx[pair_by_label(y, z["digit"][clip_idx], seed=seed)]
    clips = [z["clips"][i] for i in chosen]
    pool = np.stack([audio.fit_window(z["clips"][i]) for i in clip_idx])
    x_aud = audio.log_mel_features(clips, z["mel_mean"], z["mel_std"], seed=seed + 1,
                                   babble_pool=pool, **audio_opts)
    meta = {"image_index": idx, "clip_index": chosen} | clip_meta(chosen)
    return Dataset("av_digits", split, {"image": x_img, "audio": x_aud}, y, meta)
