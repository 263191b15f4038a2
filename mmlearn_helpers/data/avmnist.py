"""AV-MNIST: real MNIST digits paired with Free Spoken Digit Dataset recordings.

Local copies (`data_dir` holding `mnist.npz` and `fsdd/`, whose `recordings/` folder may sit
anywhere below it) are validated by structure. Without `data_dir`, the files are downloaded once
into the cache ($MMLEARN_DATA, else ~/.cache/mmlearn); MNIST is also checked by its sha256.
"""

from __future__ import annotations

import re
import shutil
import tarfile
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..settings import cap
from . import audio
from .dataset import Dataset, check_split
from .download import cache_dir, download
from .paired import degrade_images, pair_by_label
from .spoken import load_npz, shipped

MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
FSDD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz"
FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
ENERGY = 0.25  # share of the pixel variance kept by the reduced images (AV-MNIST benchmark)
_MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")


def check_mnist(z: dict[str, np.ndarray], path: Path) -> None:
    """Structure of mnist.npz: uint8 (n, 28, 28) images and matching labels in 0-9."""
    for part in ("train", "test"):
        x, y = z[f"x_{part}"], z[f"y_{part}"]
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
            raise ValueError(
                f"{path}: x_{part} has shape {x.shape} and dtype {x.dtype}; "
                "expected (n, 28, 28) uint8 - re-download mnist.npz"
            )
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(
                f"{path}: y_{part} has {len(y)} labels for {len(x)} images; expected the same "
                "sample count - re-download mnist.npz"
            )
        if y.size and (y.min() < 0 or y.max() > 9):
            raise ValueError(f"{path}: y_{part} holds labels outside 0-9; re-download mnist.npz")


def find_recordings(root: Path) -> Path:
    """The FSDD `recordings/` folder at or below root (ValueError when there is none)."""
    candidates = sorted(p for p in [root, *root.rglob("recordings")] if p.name == "recordings")
    for folder in candidates:
        if any(FSDD_NAME.match(p.name) for p in folder.glob("*.wav")):
            return folder
    raise ValueError(
        f"{root} holds no recordings/ folder of FSDD wav files named "
        "{digit}_{speaker}_{index}.wav; expected a copy of the Free Spoken Digit Dataset"
    )


def _fetch_fsdd(cache: Path) -> Path:
    """Download and unpack FSDD into cache/fsdd (atomic: unpack to a temp dir, then rename)."""
    target = cache / "fsdd"
    if target.exists():
        return target
    archive = download(FSDD_URL, cache / "fsdd-v1.0.10.tar.gz")
    tmp = Path(tempfile.mkdtemp(prefix="fsdd.", dir=cache))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        find_recordings(tmp)
        tmp.rename(target)
    except (tarfile.TarError, ValueError, EOFError) as err:
        archive.unlink(missing_ok=True)
        raise ValueError(
            f"{archive} is not a valid FSDD archive ({err}); it was removed - run again to "
            "re-download it"
        ) from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def locate(data_dir: str | Path | None) -> tuple[Path, Path]:
    """Paths of mnist.npz and the FSDD recordings folder: local copies, else the cache."""
    if data_dir is not None:
        root = cache_dir(data_dir)
        if not root.is_dir():
            raise ValueError(f"data_dir={str(data_dir)!r} is not a folder; expected a folder "
                             "holding mnist.npz and fsdd/")
        missing = [name for name in ("mnist.npz", "fsdd") if not (root / name).exists()]
        if missing:
            raise ValueError(
                f"data_dir={str(data_dir)!r} lacks {missing}; expected mnist.npz (Keras' MNIST) "
                "and fsdd/ (a copy of the Free Spoken Digit Dataset), or data_dir=None to "
                "download them into the cache"
            )
        return root / "mnist.npz", find_recordings(root / "fsdd")
    root = cache_dir(None)
    mnist = download(MNIST_URL, root / "mnist.npz", sha256_hex=MNIST_SHA256)
    return mnist, find_recordings(_fetch_fsdd(root))


def _stamp(path: Path) -> tuple[str, int, int]:
    """Cache key that changes when the file or folder changes."""
    info = path.stat()
    return str(path), info.st_mtime_ns, info.st_size


def _mnist(path: str) -> dict[str, np.ndarray]:
    return _mnist_cached(_stamp(Path(path)))


@lru_cache(maxsize=2)
def _mnist_cached(stamp: tuple[str, int, int]) -> dict[str, np.ndarray]:
    path = stamp[0]
    z = load_npz(path, _MNIST_KEYS, "re-download it (delete it from the cache) or replace it")
    check_mnist(z, Path(path))
    return z


@lru_cache(maxsize=2)
def _pca(stamp: tuple[str, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and leading components holding ENERGY of the variance of MNIST's training images."""
    from sklearn.decomposition import PCA

    x = _mnist_cached(stamp)["x_train"].reshape(-1, 784).astype(np.float32) / 255
    pca = PCA(n_components=min(30, *x.shape), svd_solver="randomized", random_state=0).fit(x)
    k = int(np.searchsorted(np.cumsum(pca.explained_variance_ratio_), ENERGY) + 1)
    return pca.mean_.astype(np.float32), pca.components_[:k].astype(np.float32)


def reduce_energy(x: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Project (n, 28, 28, 1) images on the components and reconstruct, clipped to [0, 1]."""
    flat = x.reshape(len(x), -1) - mean
    out = (flat @ components.T) @ components + mean
    return np.clip(out, 0, 1).reshape(x.shape).astype(np.float32)


def mnist_split(path: Path, split: str, reduced: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images (n, 28, 28, 1) in [0, 1] and labels; val = last twelfth of MNIST train."""
    z = _mnist(str(path))
    n_val = len(z["x_train"]) // 12
    if split == "test":
        x, y = z["x_test"], z["y_test"]
    elif split == "val":
        x, y = z["x_train"][-n_val:], z["y_train"][-n_val:]
    else:
        x, y = z["x_train"][:-n_val], z["y_train"][:-n_val]
    x = (x.astype(np.float32) / 255)[..., None]
    if reduced:
        x = reduce_energy(x, *_pca(_stamp(Path(path))))
    return x, y.astype(np.int64)


def fsdd_split_of(index: int) -> str:
    """FSDD's own split: recordings 0-4 of every speaker are test; 5-9 are our val."""
    return "test" if index < 5 else "val" if index < 10 else "train"


@lru_cache(maxsize=2)
def _fsdd(folder: str) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray, list[str]]:
    clips, digits, speakers, splits, names = [], [], [], [], []
    for path in sorted(Path(folder).glob("*.wav")):
        match = FSDD_NAME.match(path.name)
        if match is None:
            continue
        samples, rate = audio.read_wav(path)
        clips.append(audio.prepare_waveform(samples, rate, name=str(path)))
        digits.append(int(match.group(1)))
        speakers.append(match.group(2))
        splits.append(fsdd_split_of(int(match.group(3))))
        names.append(path.name)
    return clips, np.array(digits), np.array(speakers), np.array(splits), names


def fsdd_clips(folder: Path, split: str) -> tuple[list[np.ndarray], np.ndarray, dict]:
    """Prepared 8 kHz FSDD waveforms of a split, their digits and metadata (speaker, file)."""
    clips, digits, speakers, splits, names = _fsdd(str(folder))
    idx = np.flatnonzero(splits == split)
    if idx.size == 0:
        raise ValueError(f"{folder} has no {split} recordings; expected FSDD file indices "
                         "0-4 (test), 5-9 (val) and 10+ (train)")
    meta = {"speaker": speakers[idx], "file": np.array(names)[idx]}
    return [clips[i] for i in idx], digits[idx].astype(np.int64), meta


def load_avmnist(
    split: str = "train",
    seed: int = 0,
    data_dir: str | Path | None = None,
    reduced: bool = True,
    n: int | None = None,
    image_noise: float = 0.0,
    occlusion: float = 0.0,
    **audio_options,
) -> Dataset:
    """MNIST images paired (seeded, same digit, same split) with FSDD recordings.

    Images are energy-reduced like the AV-MNIST benchmark unless reduced=False; n keeps a seeded
    random subset of n pairs (all of them, said in one printed line, when the split holds
    fewer). Audio goes through the spoken_digits pipeline (same features and standardization,
    same degradations). FSDD wavs at other rates are resampled to 8 kHz and
    multi-channel files downmixed; rates below 8 kHz are refused.
    """
    check_split(split)
    if not isinstance(reduced, bool):
        raise TypeError(f"reduced={reduced!r}; expected True or False")
    mnist_path, recordings = locate(data_dir)
    x, y = mnist_split(mnist_path, split, reduced)
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n={n!r}; expected a positive integer (at most the {len(y)} "
                             f"{split} images) or None")
        n = cap(int(n), len(y), f"avmnist {split} pairs")
        keep = np.sort(np.random.default_rng(seed).choice(len(y), size=n, replace=False))
        x, y = x[keep], y[keep]
    else:
        keep = np.arange(len(y))
    x = degrade_images(x, seed=seed, image_noise=image_noise, occlusion=occlusion)
    clips, digits, meta = fsdd_clips(recordings, split)
    chosen = pair_by_label(y, digits, seed=seed)
    z = shipped()
    pool = np.stack([audio.fit_window(c) for c in clips])
    feats = audio.log_mel_features([clips[i] for i in chosen], z["mel_mean"], z["mel_std"],
                                   seed=seed + 1, babble_pool=pool, **audio_options)
    meta = {"image_index": keep} | {k: v[chosen] for k, v in meta.items()}
    return Dataset("avmnist", split, {"image": x, "audio": feats}, y, meta)
