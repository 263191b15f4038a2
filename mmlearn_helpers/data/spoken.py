"""Spoken digits synthesized with espeak-ng (shipped in data/spoken_digits.npz)."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..checks import check_languages
from . import audio
from .dataset import SOURCE_SPLIT, SPLITS, check_split

# The speakers' splits: "source" voices (English only) pretrain the speech source and appear in no
# target split; train / val / test are the target splits. Each split is a fixed set of speakers.
SPEAKER_SPLITS = (SOURCE_SPLIT, *SPLITS)
# Variants whose espeak-ng 1.51 voice file declares "gender female" (the others declare male or
# nothing; the klatt variants are formant-synthesis voices).
FEMALE_VARIANTS = frozenset("f1 f2 f3 f4 f5 aunty belinda grandma linda steph".split())
_MALE_VARIANTS = frozenset(
    "m1 m2 m3 m4 m5 m6 m7 m8 croak michel miguel sandro travis victor".split())
DATA_DIR = Path(__file__).resolve().parents[2] / "data"
SPOKEN_FILE = DATA_DIR / "spoken_digits.npz"
_KEYS = ("waves", "offsets", "digit", "speaker", "speaker_name", "speaker_language",
         "speaker_voice", "speaker_variant", "speaker_speed", "speaker_pitch", "speaker_split",
         "mel_mean", "mel_std", "sample_rate", "espeak_version")
_REBUILD = "rebuild it with `make data` (needs espeak-ng) or restore it with `git checkout data/`"


def load_npz(path: str | Path, keys: Sequence[str], what: str) -> dict[str, np.ndarray]:
    """Read every array of an .npz; a truncated or corrupt file raises ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; {what}")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise ValueError(f"{path} lacks the arrays {missing}; {what}")
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as err:
        raise ValueError(f"{path} is truncated or corrupt ({err}); {what}") from err
    except ValueError as err:
        if str(path) in str(err):
            raise
        raise ValueError(f"{path} is truncated or corrupt ({err}); {what}") from err


@lru_cache(maxsize=2)
def _shipped(path: str) -> dict:
    z = load_npz(path, _KEYS, _REBUILD)
    offsets = z["offsets"]
    if offsets[-1] != len(z["waves"]) or len(offsets) != len(z["digit"]) + 1:
        raise ValueError(f"{path} has inconsistent offsets; {_REBUILD}")
    bounds = zip(offsets[:-1], offsets[1:], strict=True)
    z["clips"] = [z["waves"][a:b].astype(np.float32) / 32767 for a, b in bounds]
    return z


def shipped(path: str | Path | None = None) -> dict:
    """The arrays of data/spoken_digits.npz (cached per process), waveforms in "clips"."""
    return _shipped(str(SPOKEN_FILE if path is None else path))


def languages() -> list[str]:
    """Language codes of the shipped spoken digits, English ("en") first."""
    langs = list(dict.fromkeys(shipped()["speaker_language"].tolist()))
    return sorted(langs, key=lambda code: (code != "en", code))


def check_language(language: str | Sequence[str]) -> tuple[str, ...]:
    """A code, a list of codes or "all" -> tuple of known spoken-digit languages."""
    return check_languages(language, languages())


def voice_kind(variant: str) -> str:
    """"female", "male", "klatt" or "unmarked": what an espeak-ng variant's voice file declares."""
    if variant in FEMALE_VARIANTS:
        return "female"
    if variant in _MALE_VARIANTS:
        return "male"
    return "klatt" if variant.startswith("klatt") else "unmarked"


def select(split: str, language: str | Sequence[str] = "en") -> np.ndarray:
    """Indices of the shipped clips of one split (by voice) and language(s).

    `split` is one of SPEAKER_SPLITS: "source" holds the English voices the speech source is
    pretrained on, which no target split ("train", "val", "test") shares.
    """
    z = shipped()
    codes = check_language(language)
    spk = z["speaker"]
    split = check_split(split, SPEAKER_SPLITS)
    keep = np.isin(z["speaker_language"][spk], codes) & (z["speaker_split"][spk] == split)
    if not keep.any():
        raise ValueError(f"split={split!r} holds no voices in language={language!r}; the "
                         "'source' split is English only")
    return np.flatnonzero(keep)


def clip_meta(idx: np.ndarray) -> dict[str, np.ndarray]:
    """Per-clip metadata: speaker name and id, language, espeak voice, variant, speed, pitch."""
    z = shipped()
    spk = z["speaker"][idx]
    return {
        "speaker": z["speaker_name"][spk],
        "speaker_id": spk.astype(np.int64),
        "language": z["speaker_language"][spk],
        "voice": z["speaker_voice"][spk],
        "variant": z["speaker_variant"][spk],
        "speed": z["speaker_speed"][spk].astype(np.int64),
        "pitch": z["speaker_pitch"][spk].astype(np.int64),
    }


@lru_cache(maxsize=16)
def _clean_features(split: str, codes: tuple[str, ...]) -> np.ndarray:
    z = shipped()
    idx = select(split, codes)
    return audio.log_mel_features([z["clips"][i] for i in idx], z["mel_mean"], z["mel_std"])


def spoken_features(
    split: str = "train", language: str | Sequence[str] = "en", seed: int = 0, **degradations
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(features (n, N_MELS, N_FRAMES, 1), labels, meta) of one split; see audio.degrade."""
    z = shipped()
    idx = select(split, language)
    opts = audio.check_degradations(**degradations)
    if opts == audio.check_degradations():
        x = _clean_features(split, check_language(language)).copy()
    else:
        clips = [z["clips"][i] for i in idx]
        pool = np.stack([audio.fit_window(c) for c in clips])
        x = audio.log_mel_features(clips, z["mel_mean"], z["mel_std"], seed=seed, babble_pool=pool,
                           **degradations)
    return x, z["digit"][idx].astype(np.int64), clip_meta(idx)


def playback_clips(
    digit: int | None = None,
    n: int = 5,
    split: str = "train",
    language: str | Sequence[str] = "en",
    seed: int = 0,
    **degradations,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """n shipped waveforms (of one digit, or any) -> (clips (n, CLIP_SAMPLES) at 8 kHz, y, meta).

    Degradations (snr_db, noise, speed, reverb, gain_db) are applied as in training, so you hear
    what the model gets; pitch acts on spectra only and is not audible here.
    """
    z = shipped()
    idx = select(split, language)
    if digit is not None:
        is_int = isinstance(digit, (int, np.integer)) and not isinstance(digit, bool)
        if not (is_int and 0 <= digit <= 9):
            raise ValueError(f"digit={digit!r}; expected an integer in 0-9 or None")
        idx = idx[z["digit"][idx] == digit]
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= len(idx):
        raise ValueError(f"n={n!r}; expected an integer in 1-{len(idx)} (clips available)")
    idx = np.sort(np.random.default_rng(seed).choice(idx, size=n, replace=False))
    clips, _ = audio.degrade([z["clips"][i] for i in idx], seed=seed,
                             **{k: v for k, v in degradations.items() if k != "pitch"})
    return clips, z["digit"][idx].astype(np.int64), clip_meta(idx)


def voice_table(language: str | Sequence[str] = "en") -> list[dict]:
    """One row per split of the shipped voices: speakers, clips, voice kinds, accents, pitch."""
    z = shipped()
    codes = check_language(language)
    rows = []
    for split in SPEAKER_SPLITS:
        spk = np.flatnonzero(np.isin(z["speaker_language"], codes) & (z["speaker_split"] == split))
        if spk.size == 0:
            continue
        kinds = [voice_kind(v) for v in z["speaker_variant"][spk]]
        rows.append({"split": split, "speakers": int(spk.size),
                     "clips": int(np.isin(z["speaker"], spk).sum()),
                     **{kind: kinds.count(kind) for kind in ("female", "male", "klatt",
                                                             "unmarked")},
                     "accents": len(set(z["speaker_voice"][spk].tolist())),
                     "mean_pitch": float(z["speaker_pitch"][spk].mean()),
                     "mean_speed": float(z["speaker_speed"][spk].mean())})
    return rows
