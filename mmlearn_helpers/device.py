"""Where the notebooks run: devices, GPU memory growth, mixed precision, distribution strategy."""

from __future__ import annotations

import contextlib
import functools
import os
import platform

from .checks import check_int

MIXED_PRECISION_CHOICES = ("auto", "on", "off")
# The strategy `setup` chose; None until setup runs (and always on a non-TensorFlow backend).
_STATE: dict = {"strategy": None}


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


_auto_strategy = strategy  # `setup` has an argument named strategy


def describe() -> str:
    """One line saying where the notebook runs: backend, versions, CPU cores and GPUs."""
    import keras

    names = gpus()
    where = f"{len(names)} GPU(s): {', '.join(names)}" if names else "CPU only (no GPU found)"
    return (f"{where}; {os.cpu_count()} CPU cores; Keras {keras.__version__} on "
            f"{keras.backend.backend()}; Python {platform.python_version()}")


def _strategy_name(strat) -> str:
    name = type(strat).__name__
    return "default" if name == "_DefaultDistributionStrategy" else name


def setup(mixed_precision: str = "auto", strategy=None) -> dict:
    """Get ready to train: GPU memory growth, mixed precision, distribution strategy; one line.

    Call it once at the top of a training notebook. `mixed_precision` "auto" uses float16 compute
    (policy mixed_float16) when a GPU is present and float32 otherwise; "on" asks for it (refused
    without a GPU), "off" keeps float32. The strategy is a MirroredStrategy over all GPUs when
    there are several, TensorFlow's default strategy otherwise; a `tf.distribute.Strategy` given
    as `strategy` is used instead. Models the helpers build are then built and compiled in its
    scope (see `scope`). Prints and returns (key "line") where the notebook runs; the dict also
    holds "policy", "strategy" (None on a non-TensorFlow backend), "replicas" and "gpus".
    Safe to call again (memory growth that can no longer change is left as it is).
    """
    import keras

    if not isinstance(mixed_precision, str):
        raise TypeError(f"mixed_precision is a {type(mixed_precision).__name__} "
                        f"({mixed_precision!r}); expected a str, one of {MIXED_PRECISION_CHOICES}")
    if mixed_precision not in MIXED_PRECISION_CHOICES:
        raise ValueError(f"mixed_precision={mixed_precision!r} is not valid; expected one of "
                         f"{MIXED_PRECISION_CHOICES}")
    tf = _tf()
    if strategy is not None:
        if tf is None:
            raise ValueError(f"strategy={strategy!r} needs the tensorflow backend; Keras runs on "
                             f"{keras.backend.backend()!r}; expected strategy=None")
        if not isinstance(strategy, tf.distribute.Strategy):
            raise TypeError(f"strategy is a {type(strategy).__name__}; expected a tf.distribute"
                            ".Strategy (e.g. tf.distribute.MirroredStrategy()) or None")
    names = gpus()
    if mixed_precision == "on" and not names:
        raise ValueError("mixed_precision='on' asks for float16 compute, but no GPU was found; "
                         "expected 'auto' or 'off' on a CPU-only machine")
    enable_memory_growth()  # before anything initialises the GPUs (strategy() does)
    policy = set_mixed_precision(mixed_precision)
    chosen = None if tf is None else (strategy if strategy is not None else _auto_strategy())
    _STATE["strategy"] = chosen
    n = replicas()
    where = f"{len(names)} GPU(s) ({', '.join(names)})" if names else "CPU only"
    line = (f"Keras on {keras.backend.backend()}: {where}; policy {policy}; strategy "
            f"{'none' if chosen is None else _strategy_name(chosen)}; {n} replica(s)")
    print(line)
    return {"policy": policy, "strategy": chosen, "replicas": n, "gpus": names, "line": line}


def scope():
    """Context manager: the scope of the strategy `setup` chose; a no-op without one.

    A no-op before `setup`, on a non-TensorFlow backend and for the default strategy. Entering
    it again inside itself is fine (a classifier built around a freshly built encoder).
    """
    strat = _STATE["strategy"]
    if strat is None or _tf() is None or _strategy_name(strat) == "default":
        return contextlib.nullcontext()
    return strat.scope()


def in_scope(func):
    """Decorator: run `func` (a model builder) inside `scope()`."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with scope():
            return func(*args, **kwargs)

    return wrapper


def replicas() -> int:
    """How many model replicas train in sync (GPUs under MirroredStrategy; 1 on a CPU)."""
    strat = _STATE["strategy"]
    return 1 if strat is None else int(strat.num_replicas_in_sync)


def scaled_batch(batch_size: int) -> int:
    """The global batch for `batch_size` examples per replica: batch_size * replicas()."""
    check_int(batch_size, "batch_size", low=1)
    return int(batch_size) * replicas()
