"""Download cache: atomic, retried, checksum-checked; all offline (file:// URLs, patched fetch)."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from mmlearn_helpers.data import avmnist as av
from mmlearn_helpers.data import download as dl
from mmlearn_helpers.data import load_dataset


def _source(tmp_path: Path, payload: bytes = b"digits" * 1000) -> tuple[str, str]:
    src = tmp_path / "remote.bin"
    src.write_bytes(payload)
    return src.as_uri(), hashlib.sha256(payload).hexdigest()


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("MMLEARN_DATA", str(tmp_path / "env"))
    assert dl.cache_dir(tmp_path / "arg") == tmp_path / "arg"
    assert dl.cache_dir(None) == tmp_path / "env"
    monkeypatch.delenv("MMLEARN_DATA")
    assert dl.cache_dir(None) == Path.home() / ".cache" / "mmlearn"
    with pytest.raises(TypeError, match="data_dir=3"):
        dl.cache_dir(3)


def test_download_checks_sha256_and_is_reused(tmp_path):
    url, digest = _source(tmp_path)
    dest = dl.download(url, tmp_path / "cache" / "file.bin", digest, verbose=False)
    assert dest.read_bytes() == b"digits" * 1000
    assert [p.name for p in dest.parent.iterdir()] == ["file.bin"]  # no temp files left
    Path(url[len("file://"):]).unlink()  # the second call must not need the source
    assert dl.download(url, dest, digest, verbose=False) == dest


def test_checksum_mismatch_removes_file_and_says_what_to_do(tmp_path):
    url, _ = _source(tmp_path)
    dest = tmp_path / "cache" / "file.bin"
    with pytest.raises(ValueError, match="was removed - run again to re-download"):
        dl.download(url, dest, "0" * 64, verbose=False)
    assert not dest.exists()


def test_interrupted_download_leaves_no_file_and_is_retried(tmp_path, monkeypatch):
    url, digest = _source(tmp_path)
    real_fetch, calls = dl._fetch, []

    def flaky(url, tmp, timeout):
        calls.append(tmp)
        if len(calls) == 1:
            tmp.write_bytes(b"dig")  # a partial file, then the connection drops
            raise ConnectionResetError("connection reset")
        real_fetch(url, tmp, timeout)

    monkeypatch.setattr(dl, "_fetch", flaky)
    monkeypatch.setattr(dl.time, "sleep", lambda s: None)
    dest = dl.download(url, tmp_path / "cache" / "file.bin", digest, verbose=False)
    assert len(calls) == 2 and dest.read_bytes() == b"digits" * 1000
    assert not calls[0].exists()


def test_download_gives_up_with_advice_and_no_partial_file(tmp_path, monkeypatch):
    def broken(url, tmp, timeout):
        tmp.write_bytes(b"partial")
        raise TimeoutError("timed out")

    monkeypatch.setattr(dl, "_fetch", broken)
    monkeypatch.setattr(dl.time, "sleep", lambda s: None)
    dest = tmp_path / "cache" / "file.bin"
    with pytest.raises(OSError, match="after 2 attempts.*place the file at"):
        dl.download("https://example.invalid/f", dest, retries=2, verbose=False)
    assert list(dest.parent.iterdir()) == []


def test_short_read_counts_as_interrupted(tmp_path, monkeypatch):
    class Short:
        headers = {"Content-Length": "100"}

        def read(self, n=-1):
            data, self.data = getattr(self, "data", b"x" * 10), b""
            return data

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(dl.urllib.request, "urlopen", lambda url, timeout: Short())
    monkeypatch.setattr(dl.time, "sleep", lambda s: None)
    with pytest.raises(OSError, match="got 10 of 100 bytes"):
        dl.download("https://example.invalid/f", tmp_path / "f", retries=1, verbose=False)
    assert list(tmp_path.iterdir()) == []


def test_avmnist_downloads_into_the_cache(tmp_path, monkeypatch):
    remote = tmp_path / "remote"
    recordings = remote / "free-spoken-digit-dataset-1.0.10" / "recordings"
    recordings.mkdir(parents=True)
    t = np.arange(3200) / 8000
    for digit in range(10):
        for index in (0, 5, 10):
            tone = 0.4 * np.sin(2 * np.pi * (300 + 80 * digit) * t) * np.hanning(len(t))
            samples = (tone * 32767).astype(np.int16)
            wavfile.write(recordings / f"{digit}_zoe_{index}.wav", 8000, samples)
    archive = tmp_path / "fsdd.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(remote / "free-spoken-digit-dataset-1.0.10", "free-spoken-digit-dataset-1.0.10")
    y = np.arange(24) % 10
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((24, 28, 28), np.uint8), y_train=y,
             x_test=np.zeros((10, 28, 28), np.uint8), y_test=np.arange(10))
    digest = hashlib.sha256((tmp_path / "mnist.npz").read_bytes()).hexdigest()
    monkeypatch.setattr(av, "MNIST_URL", (tmp_path / "mnist.npz").as_uri())
    monkeypatch.setattr(av, "MNIST_SHA256", digest)
    monkeypatch.setattr(av, "FSDD_URL", archive.as_uri())
    monkeypatch.setenv("MMLEARN_DATA", str(tmp_path / "cache"))
    d = load_dataset("avmnist", split="test", reduced=False)
    assert d.n == 10 and set(d.meta["speaker"]) == {"zoe"}
    assert (tmp_path / "cache" / "mnist.npz").exists()
    assert av.find_recordings(tmp_path / "cache" / "fsdd").is_dir()
    monkeypatch.setattr(av, "MNIST_SHA256", "f" * 64)
    (tmp_path / "cache" / "mnist.npz").unlink()
    with pytest.raises(ValueError, match="sha256"):
        load_dataset("avmnist", split="test")
    assert not (tmp_path / "cache" / "mnist.npz").exists()
