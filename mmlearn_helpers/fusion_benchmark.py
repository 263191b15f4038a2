"""The published AV-MNIST setting, reproduced: one classifier per modality, then late fusion, timed.

MultiBench's "simple late fusion" on AV-MNIST trains an image and an audio network and combines
their outputs. Here each expert is this collection's conv classifier, trained on the same pairs;
the fusion rule (sum rule at w = 0.5, sum rule with w tuned, product rule) is chosen on the
validation split, and the test split only reports the chosen rule. Seconds are wall-clock
seconds of training (both experts, the first seed including Keras' one-off tracing).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import keras
import numpy as np
from tqdm.auto import tqdm

from .data.dataset import Dataset
from .fusion import accuracy, best_weight, late_rules, modality_encoder
from .models import classifier
from .training import fit, predict_proba

RULES = ("late_equal", "late_tuned", "late_product")
MODALITIES = ("image", "audio")
# MultiBench's simple late fusion on the same 8,000 / 2,000 real AV-MNIST pairs, clean FSDD, as
# measured with its benchmark code on a 2-core CPU and quoted in issue 11 of this project: a
# reference to compare with, not something this package measures.
MULTIBENCH = {"method": "MultiBench simple late fusion (quoted)", "image_only": 0.424,
              "audio_only": 0.976, "fusion": 0.9875, "train_seconds": 98.0}


def _check_data(data: object) -> dict[str, Dataset]:
    if not isinstance(data, Mapping) or set(data) != {"train", "val", "test"}:
        got = sorted(data) if isinstance(data, Mapping) else type(data).__name__
        raise ValueError(f"data has {got}; expected a dict with the Datasets 'train', 'val', "
                         "'test'")
    for split, d in data.items():
        if not isinstance(d, Dataset) or set(MODALITIES) - set(d.modalities):
            raise ValueError(f"data[{split!r}] should be a Dataset with modalities {MODALITIES}")
    return dict(data)


def late_fusion_benchmark(
    data: Mapping[str, Dataset],
    *,
    seeds: Sequence[int],
    epochs: int,
    lr: float = 3e-3,
    batch_size: int = 64,
    pool: Mapping[str, int] | None = None,
    filters: Sequence[int] = (16, 32, 32),
    verbose: bool = True,
) -> list[dict]:
    """Per seed: train seconds, val and test accuracy of each expert and rule, the val choice.

    Each row holds `train_seconds`, `<method>` (test accuracy) and `val_<method>` for image_only,
    audio_only and the RULES, `w` (the validation-tuned image weight), `chosen` (the rule with
    the best validation accuracy) and `fusion` (the chosen rule's test accuracy).
    """
    data = _check_data(data)
    pool = dict(pool or {})
    experts: dict[str, keras.Model] = {}
    rows = []
    for seed in tqdm(list(seeds), desc="benchmark seeds", disable=not verbose):
        keras.utils.set_random_seed(int(seed))
        fresh = {m: classifier(modality_encoder(data["train"].x[m].shape[1:], filters,
                                                pool=pool.get(m, 1)), name=f"{m}_expert")
                 for m in MODALITIES}
        for m, model in fresh.items():  # reuse compiled experts: no retracing after seed one
            if m in experts:
                experts[m].set_weights(model.get_weights())
            else:
                experts[m] = model
        start = time.perf_counter()
        for m, model in experts.items():
            fit(model, data["train"].x[m], data["train"].y, epochs=epochs, lr=lr, seed=int(seed),
                batch_size=batch_size)
        seconds = time.perf_counter() - start
        probs = {s: [predict_proba(experts[m], data[s].x[m]) for m in MODALITIES]
                 for s in ("val", "test")}
        w = best_weight(*probs["val"], data["val"].y)
        val, test = (late_rules(dict(zip(MODALITIES, probs[s], strict=True)), w)
                     for s in ("val", "test"))
        row = {"seed": int(seed), "train_seconds": seconds, "w": w}
        row |= {k: accuracy(data["test"].y, p) for k, p in test.items()}
        row |= {f"val_{k}": accuracy(data["val"].y, p) for k, p in val.items()}
        row["chosen"] = max(RULES, key=lambda r: row[f"val_{r}"])
        row["fusion"] = row[row["chosen"]]
        rows.append(row)
    return rows


def summary(rows: Sequence[dict]) -> dict[str, float]:
    """Mean and population std over seeds of every number in `rows`."""
    if not rows:
        raise ValueError("rows is empty; expected the output of late_fusion_benchmark")
    out: dict[str, float] = {}
    for key, value in rows[0].items():
        if isinstance(value, float) and key != "seed":
            values = np.array([r[key] for r in rows])
            out[key], out[f"{key}_std"] = float(values.mean()), float(values.std())
    out["seeds"] = len(rows)
    return out


def comparison_rows(bench: Mapping[str, float]) -> list[dict]:
    """This package's benchmark `summary` beside MULTIBENCH, as rows for `results_table`."""
    ours = {"method": "mmlearn late fusion (measured)"}
    for key in ("image_only", "audio_only", "fusion", "train_seconds"):
        ours[key], ours[f"{key}_std"] = bench[key], bench[f"{key}_std"]
    return [ours, dict(MULTIBENCH)]
