"""Download cache: atomic, retried downloads with sha256 checks."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

CHUNK = 1 << 20


def cache_dir(data_dir: str | Path | None = None) -> Path:
    """The data cache: data_dir if given, else $MMLEARN_DATA, else ~/.cache/mmlearn."""
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(f"data_dir={data_dir!r}; expected a folder path or None")
    chosen = data_dir or os.environ.get("MMLEARN_DATA") or Path.home() / ".cache" / "mmlearn"
    return Path(chosen).expanduser()


def sha256(path: str | Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url: str, tmp: Path, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
        expected = response.headers.get("Content-Length")
        shutil.copyfileobj(response, out, CHUNK)
    if expected is not None and tmp.stat().st_size != int(expected):
        raise OSError(f"got {tmp.stat().st_size} of {expected} bytes")


def download(
    url: str,
    dest: str | Path,
    sha256_hex: str | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    verbose: bool = True,
) -> Path:
    """Download url to dest unless it is already there; atomic (temp file + rename) and retried.

    A file whose sha256 differs from sha256_hex is removed and a ValueError says what to do.
    """
    dest = Path(dest)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 1:
        raise ValueError(f"retries={retries!r}; expected an integer >= 1")
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        errors = []
        for attempt in range(1, retries + 1):
            fd, name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
            os.close(fd)
            tmp = Path(name)
            try:
                if verbose:
                    print(f"downloading {url} -> {dest} (attempt {attempt}/{retries})")
                _fetch(url, tmp, timeout)
                os.replace(tmp, dest)
                break
            except OSError as err:  # URLError, timeouts and short reads are OSErrors
                errors.append(f"attempt {attempt}: {err}")
                time.sleep(min(2 ** (attempt - 1), 10) if attempt < retries else 0)
            finally:
                tmp.unlink(missing_ok=True)
        else:
            raise OSError(
                f"could not download {url} after {retries} attempts ({'; '.join(errors)}); "
                f"check the connection, or place the file at {dest} yourself"
            )
    if sha256_hex is not None:
        got = sha256(dest)
        if got != sha256_hex:
            dest.unlink()
            raise ValueError(
                f"{dest} has sha256 {got}, expected {sha256_hex}; the file was removed - run "
                f"again to re-download it, or copy a good file from {url} to {dest}"
            )
    return dest
