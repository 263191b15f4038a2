"""Convert chars2vec 0.1.7's pretrained `eng_50` model into data/chars2vec_eng_50.npz.

A learner never runs this: the .npz is committed. It documents, and can redo, the conversion:

    python -m pip download chars2vec==0.1.7 --no-deps --no-binary :all: -d /tmp/c2v
    python data/convert_chars2vec.py /tmp/c2v/chars2vec-0.1.7.tar.gz

The sdist is read in place (never installed: its setup.py shells out to pip and its code is
Keras 2). From it come `chars2vec/trained_models/eng_50/model.pkl` (a protocol-2 pickle of
`[50, {char: index}]`, read here by an unpickler that refuses every class or function, so
nothing in it can run) and `.../eng_50/weights.h5` (Keras 2.2.0 `save_weights` output: layers
`lstm_1` and `lstm_2`, each `kernel`, `recurrent_kernel`, `bias`). The arrays are copied
unchanged (float32, Keras's gate order i, f, c, o, which Keras 3 keeps), the vocabulary is
stored as a string in index order, and the sha256 of the sdist and of both source files are
stored alongside. The output is byte-reproducible; the script also updates its sha256 and
size in data/manifest.json.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import sys
import tarfile
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from build_spoken_digits import MANIFEST, write_npz  # noqa: E402

OUT = ROOT / "chars2vec_eng_50.npz"
VERSION = "0.1.7"
MODEL_DIR = f"chars2vec-{VERSION}/chars2vec/trained_models/eng_50"
LAYERS = ("lstm_1", "lstm_2")
WEIGHTS = ("kernel", "recurrent_kernel", "bias")


class _DataOnly(pickle.Unpickler):
    """An unpickler for plain lists, dicts, strings and ints: any class or function is refused."""

    def find_class(self, module: str, name: str) -> None:
        raise pickle.UnpicklingError(f"model.pkl names {module}.{name}; expected plain data")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_sdist(path: Path) -> dict[str, bytes]:
    """The bytes of eng_50's model.pkl and weights.h5 inside the chars2vec sdist."""
    with tarfile.open(path, "r:gz") as tar:
        return {name: tar.extractfile(f"{MODEL_DIR}/{name}").read()
                for name in ("model.pkl", "weights.h5")}


def convert(sdist: Path) -> dict[str, np.ndarray]:
    """The arrays of the .npz: vocabulary, the two LSTMs' weights, provenance."""
    files = read_sdist(sdist)
    dim, char_to_ix = _DataOnly(io.BytesIO(files["model.pkl"])).load()
    chars = sorted(char_to_ix, key=char_to_ix.get)
    assert [char_to_ix[c] for c in chars] == list(range(len(chars))), "indices not 0..n-1"
    assert all(len(c) == 1 and c.isascii() for c in chars), "vocabulary is not ASCII characters"
    arrays: dict[str, np.ndarray] = {"vocabulary": np.array("".join(chars))}
    with h5py.File(io.BytesIO(files["weights.h5"]), "r") as h5:
        assert h5.attrs["keras_version"] in (b"2.2.0", "2.2.0"), h5.attrs["keras_version"]
        for layer in LAYERS:
            for weight in WEIGHTS:
                value = np.asarray(h5[f"{layer}/{layer}/{weight}:0"])
                assert value.dtype == np.float32 and value.shape[-1] == 4 * dim
                arrays[f"{layer}_{weight}"] = value
    assert arrays["lstm_1_kernel"].shape == (len(chars), 4 * dim)
    arrays["source"] = np.array(
        f"chars2vec {VERSION} (PyPI sdist chars2vec-{VERSION}.tar.gz sha256 "
        f"{_sha256(sdist.read_bytes())}), {MODEL_DIR.split('/', 1)[1]}: model.pkl sha256 "
        f"{_sha256(files['model.pkl'])}, weights.h5 sha256 {_sha256(files['weights.h5'])}; "
        "saved by Keras 2.2.0; Apache-2.0, see data/chars2vec_LICENSE")
    return arrays


def update_manifest(path: Path) -> None:
    """Record the file's sha256 and size in data/manifest.json, keeping everything else."""
    manifest = json.loads(MANIFEST.read_text())
    data = path.read_bytes()
    manifest["files"][path.name] = {"sha256": _sha256(data), "bytes": len(data)}
    manifest["files"] = dict(sorted(manifest["files"].items()))
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: python {Path(__file__).name} path/to/chars2vec-{VERSION}.tar.gz")
    write_npz(OUT, convert(Path(sys.argv[1])))
    update_manifest(OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes) and updated {MANIFEST.name}")
