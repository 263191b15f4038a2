"""Helpers for the mmlearn notebooks: data, models, transfer, fusion, plots and the runner."""

import os

# Keep TensorFlow's C++ start-up messages out of the learner's notebooks. oneDNN is off because
# its notice is printed before logging starts; it made no measurable difference on 8x8 inputs.
# Both are defaults only: set them in your shell to override.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
