"""chars2vec's pretrained `eng_50` word encoder, ported to Keras 3: a word -> 50 numbers.

chars2vec 0.1.7 (Apache-2.0, https://github.com/IntuitionEngineeringTeam/chars2vec) trained two
stacked character LSTMs (Keras 2.2.0) on pairs of words and misspellings, so similarly written
words land close together: "seven", "sevne" and "s3ven" are neighbours. This module rebuilds that
encoder from Keras 3 layers and the original weights (data/chars2vec_eng_50.npz, converted by
data/convert_chars2vec.py; licence in data/chars2vec_LICENSE) and prepares words as chars2vec's
`vectorize_words` does:

- a word is lower-cased with Python's `str.lower`, then read one character (code point) at a time;
- each character in `VOCABULARY` becomes a one-hot vector of 59; any other character (a space,
  an upper-case letter that `lower` leaves alone, `[`, `é`, `ß`, any non-ASCII character) becomes
  an all-zero vector: it is not dropped, it still takes a step of the LSTM;
- the LSTMs read the steps in order, with no masking; the embedding is the second LSTM's last state.

Keras 2.2's LSTM gates use its own hard sigmoid, clip(0.2 x + 0.5, 0, 1), whereas Keras 3's
`hard_sigmoid` is clip(x / 6 + 0.5, 0, 1): `keras2_hard_sigmoid` restores the original, and
tests/test_chars2vec.py checks the port against an independent NumPy forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import keras
import numpy as np
from keras import ops

from .checks import check_int
from .data.spoken import DATA_DIR, load_npz

WEIGHTS_FILE = DATA_DIR / "chars2vec_eng_50.npz"
EMB_DIM = 50
# chars2vec eng_50's characters in index order: the one-hot position of each is its index here
VOCABULARY = "!\"#$%&'()*+,-./0123456789:;<=>?@_abcdefghijklmnopqrstuvwxyz"
SCOPE = ("English only and ASCII only: trained on English words; its 59 characters are lower-case "
         "a-z, the digits and ASCII punctuation (no space, no [\\]^`{|}~); every other character, "
         "any non-ASCII one included, is read as an all-zero step, as in chars2vec")
_INDEX = {c: i for i, c in enumerate(VOCABULARY)}
_LAYERS = ("lstm_1", "lstm_2")
_WEIGHTS = ("kernel", "recurrent_kernel", "bias")
_WHAT = "restore it with `git checkout data/chars2vec_eng_50.npz`"


@keras.saving.register_keras_serializable(package="mmlearn")
def keras2_hard_sigmoid(x: object) -> object:
    """Keras 2's hard sigmoid, clip(0.2 x + 0.5, 0, 1): the gates chars2vec was trained with."""
    return ops.clip(0.2 * x + 0.5, 0.0, 1.0)


def build_model(recurrent_activation: object = keras2_hard_sigmoid) -> keras.Model:
    """The eng_50 architecture, Keras's initial weights: (batch, steps, 59) -> (batch, 50)."""
    inputs = keras.Input(shape=(None, len(VOCABULARY)), name="characters")
    x = keras.layers.LSTM(EMB_DIM, return_sequences=True, recurrent_activation=recurrent_activation,
                          name="lstm_1")(inputs)
    x = keras.layers.LSTM(EMB_DIM, recurrent_activation=recurrent_activation, name="lstm_2")(x)
    return keras.Model(inputs, x, name="chars2vec_eng_50")


@lru_cache(maxsize=1)
def _weights() -> dict[str, np.ndarray]:
    keys = [f"{layer}_{w}" for layer in _LAYERS for w in _WEIGHTS] + ["vocabulary"]
    arrays = load_npz(WEIGHTS_FILE, keys, _WHAT)
    if str(arrays["vocabulary"]) != VOCABULARY:
        raise ValueError(f"{WEIGHTS_FILE} holds another vocabulary than chars2vec eng_50; {_WHAT}")
    return arrays


def load_chars2vec() -> keras.Model:
    """A new Keras 3 model holding chars2vec's pretrained eng_50 weights (see `embed`)."""
    model = build_model()
    arrays = _weights()
    for layer in _LAYERS:
        model.get_layer(layer).set_weights([arrays[f"{layer}_{w}"] for w in _WEIGHTS])
    return model


@lru_cache(maxsize=1)
def _default_model() -> keras.Model:
    return load_chars2vec()


def _check_words(words: object) -> list[str]:
    expected = "a list of strings, e.g. ['seven', 'sevne']"
    if isinstance(words, (str, bytes)) or not isinstance(words, (Sequence, np.ndarray)):
        raise TypeError(f"words={words!r} is a {type(words).__name__}; expected {expected}")
    words = list(words)
    if not words:
        raise ValueError(f"words is empty; expected {expected}")
    for i, word in enumerate(words):
        if not isinstance(word, str):
            raise TypeError(f"words[{i}]={word!r} is a {type(word).__name__}; expected a str")
    return words


def one_hot(word: str) -> np.ndarray:
    """A word as chars2vec reads it: lower-cased, (len, 59) float32, unknown characters all zero."""
    word = word.lower()
    x = np.zeros((len(word), len(VOCABULARY)), np.float32)
    for t, char in enumerate(word):
        if char in _INDEX:
            x[t, _INDEX[char]] = 1.0
    return x


def _forward(model: keras.Model, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    parts = [ops.convert_to_numpy(model(x[i:i + batch_size], training=False))
             for i in range(0, len(x), batch_size)]
    return np.concatenate(parts).astype(np.float32)


def embed(words: Sequence[str], model: keras.Model | None = None,
          pad_to: int | None = None) -> np.ndarray:
    """Embeddings of `words`, shape (n, 50) float32, as chars2vec's `vectorize_words` gives them.

    With `pad_to=None` each word is read on its own, as chars2vec embeds a one-word list, so a
    word's vector never depends on the other words. chars2vec itself pads a list: every word is
    preceded by all-zero steps up to the longest word of the call (Keras 2 `pad_sequences`,
    padding and truncation at the front, no masking), which moves a short word's vector by up
    to ~0.4 per number; give `pad_to` (that length, or chars2vec's `maxlen_padseq`) to get
    exactly those. `model` defaults
    to the pretrained encoder (loaded once); pass another model of `build_model`'s shape to use it.
    """
    words = _check_words(words)
    if model is None:
        model = _default_model()
    elif not isinstance(model, keras.Model):
        raise TypeError(f"model={model!r} is a {type(model).__name__}; expected a keras.Model "
                        "from load_chars2vec() or build_model()")
    encoded = [one_hot(w) for w in words]
    out = np.empty((len(words), EMB_DIM), np.float32)
    if pad_to is not None:
        pad_to = check_int(pad_to, "pad_to", low=1)
        x = np.zeros((len(words), pad_to, len(VOCABULARY)), np.float32)
        for i, steps in enumerate(encoded):
            steps = steps[-pad_to:]  # Keras 2 pad_sequences truncates at the front too
            x[i, pad_to - len(steps):] = steps
        out[:] = _forward(model, x)
        return out
    for i, steps in enumerate(encoded):
        if not len(steps):
            raise ValueError(f"words[{i}]={words[i]!r} is empty; expected at least one character "
                             "(or give pad_to, where it reads as all-zero steps as in chars2vec)")
    for length in sorted({len(steps) for steps in encoded}):
        same = [i for i, steps in enumerate(encoded) if len(steps) == length]
        out[same] = _forward(model, np.stack([encoded[i] for i in same]))
    return out
