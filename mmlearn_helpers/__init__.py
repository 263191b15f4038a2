"""Helpers for the mmlearn notebooks: data, models, transfer, fusion, plots and the runner."""

import os
import sys

# Keep TensorFlow's C++ log out of the learner's notebooks (a default: set it in your shell to
# override). oneDNN stays on, TensorFlow's default on x86: it trains the spectrogram CNNs here
# 1.38x faster (10.2 s vs 14.1 s for one learning-curve point, make bench has more).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with file descriptor 2 muted: its oneDNN notice is written there before
    its logging starts, so TF_CPP_MIN_LOG_LEVEL cannot hide it. Errors still raise as usual."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to mute (e.g. a detached process)
        import tensorflow  # noqa: F401

        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


if os.environ["KERAS_BACKEND"] == "tensorflow" and "tensorflow" not in sys.modules:
    _import_tensorflow_quietly()

__version__ = "0.1.0"
