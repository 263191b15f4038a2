"""Where the notebooks run: devices, GPU memory growth, mixed precision, distribution strategy."""

from __future__ import annotations

import os
import platform

MIXED_PRECISION_CHOICES = ("auto", "on", "off")


def _tf():
    """TensorFlow, or None when Keras runs on another backend."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    return tf


def list_devices() -> list[dict]:
    """Every physical device TensorFlow sees, as {"name", "type"} dicts (CPU first)."""
    tf = _tf()
    if tf is None:
        return [{"name": "host", "type": "CPU"}]
    return [{"name": d.name, "type": d.device_type} for d in tf.config.list_physical_devices()]


def gpus() -> list[str]:
    """Names of the GPUs TensorFlow can use (empty on a CPU-only machine)."""
    return [d["name"] for d in list_devices() if d["type"] == "GPU"]


def enable_memory_growth() -> list[str]:
    """Let TensorFlow allocate GPU memory as needed instead of all at once; return the GPUs set."""
    tf = _tf()
    done = []
    if tf is None:
        return done
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
            done.append(gpu.name)
        except RuntimeError:  # the GPU was already initialised; growth cannot change now
            pass
    return done


def set_mixed_precision(mode: str = "auto") -> str:
    """Use float16 compute on GPUs ("auto"/"on") or float32 ("off"); return the policy name."""
    import keras

    if mode not in MIXED_PRECISION_CHOICES:
        raise ValueError(f"mode={mode!r} is not valid; expected one of {MIXED_PRECISION_CHOICES}")
    if mode == "on" and not gpus():
        raise ValueError("mode='on' asks for mixed precision, but no GPU was found; use 'auto'")
    policy = "mixed_float16" if mode == "on" or (mode == "auto" and gpus()) else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def strategy():
    """MirroredStrategy over several GPUs, TensorFlow's default strategy otherwise."""
    tf = _tf()
    if tf is None:
        raise ValueError(f"strategy() needs the tensorflow backend; KERAS_BACKEND is "
                         f"{os.environ.get('KERAS_BACKEND')!r}")
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def describe() -> str:
    """One line saying where the notebook runs: backend, versions, CPU cores and GPUs."""
    import keras

    names = gpus()
    where = f"{len(names)} GPU(s): {', '.join(names)}" if names else "CPU only (no GPU found)"
    return (f"{where}; {os.cpu_count()} CPU cores; Keras {keras.__version__} on "
            f"{keras.backend.backend()}; Python {platform.python_version()}")
