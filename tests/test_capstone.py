"""The capstone orchestration: every method on a tiny fixed case, argument checks, summaries."""

import keras
import numpy as np
import pytest

from mmlearn_helpers import capstone, chars2vec, features, transfer
from mmlearn_helpers.data import Dataset
from mmlearn_helpers.data.text import MAX_LEN, encode, vocabulary
from mmlearn_helpers.models import classifier, conv_encoder, count_params, encoder_of, text_encoder

SHAPES = {"image": (8, 8, 1), "audio": (8, 12, 1)}
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TINY = {"seeds": 1, "steps": 2, "batch_size": 8, "lr": 1e-2, "distill_lr": 1e-3, "tune_lr": 1e-3}


def _split(split: str, per_class: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(10), per_class)
    x = {m: (rng.normal(size=(len(y), *s)) + y[:, None, None, None] / 5).astype(np.float32)
         for m, s in SHAPES.items()}
    typo = rng.choice(list("aeiou!"), len(y))  # one written character more per string
    x["text"] = np.array([WORDS[d] + c for d, c in zip(y, typo, strict=True)])
    return Dataset("tiny", split, x, y)


@pytest.fixture(scope="module")
def tiny():
    data = {"train": _split("train", 4, 0), "val": _split("val", 2, 1),
            "test": _split("test", 2, 2)}
    keras.utils.set_random_seed(0)
    sources = {m: classifier(conv_encoder(s, (4,)), 10, name=f"{m}_source")
               for m, s in SHAPES.items()}
    sources["text"] = classifier(text_encoder(MAX_LEN, len(vocabulary()), (4,)), 10,
                                 name="text_source")
    cache: dict = {}
    run = capstone.run_seed(data, sources, seed=3, labels_per_class=2, budget=TINY, cache=cache,
                            check_factors=(2,))
    return data, sources, cache, run


ZERO_SHOT = ("zero_shot_image", "zero_shot_audio", "zero_shot_text", "zero_shot_late")


def test_every_method_gives_test_and_val_probabilities_and_costs(tiny):
    data, _, _, run = tiny
    assert tuple(run["methods"]) == capstone.METHODS
    assert set(capstone.SINGLE) < set(capstone.METHODS)
    for name, r in run["methods"].items():
        for key, split in (("probs", "test"), ("val_probs", "val")):
            assert r[key].shape == (data[split].n, 10), (name, key)
            np.testing.assert_allclose(r[key].sum(axis=1), 1.0, atol=1e-4, err_msg=name)
        assert r["seconds"] >= 0 and (r["params"] == 0) == (name in ZERO_SHOT), name
    steps = {name: r["steps"] for name, r in run["methods"].items()}
    for convex in ("transfer_frozen", "probe", "text_transfer_frozen", "chars2vec_probe",
                   "probe3"):
        assert steps[convex] == 0, convex  # convex fits, no gradient steps
    assert all(steps[name] == 0 for name in ZERO_SHOT)  # no training at all
    assert steps["audio_scratch"] == steps["finetuned_multimodal"] == TINY["steps"]
    assert steps["audio_scratch_same_arch"] == steps["transfer_finetuned"] == TINY["steps"]
    assert steps["text_scratch"] == steps["early3"] == TINY["steps"]
    # the student distills whole passes over its 20 unlabelled pairs: one pass is 3 batches of 8
    assert steps["crossmodal_student"] == 3
    assert steps["late_tuned"] == steps["image_scratch"] + steps["audio_scratch"]
    assert steps["late_pretrained_tuned"] == steps["transfer_finetuned"]
    assert steps["late3_tuned"] == steps["late_tuned"] + steps["text_scratch"]
    assert steps["late3_pretrained_tuned"] == steps["transfer_finetuned"]
    assert {name: len(w) for name, w in run["weights"].items()} == {
        "late_tuned": 2, "late_pretrained_tuned": 2, "zero_shot_late": 2, "late3_tuned": 3,
        "late3_pretrained_tuned": 3}
    for w in run["weights"].values():  # on the simplex
        assert min(w) >= 0 and sum(w) == pytest.approx(1)
    params = {name: r["params"] for name, r in run["methods"].items()}
    assert params["probe"] == 2 * 4 * 10 + 10 and params["probe3"] == 3 * 4 * 10 + 10
    assert params["chars2vec_probe"] == chars2vec.EMB_DIM * 10 + 10
    assert run["teacher"]["name"] in ("image_scratch", "image_transfer")
    assert run["teacher"]["unlabelled_pairs"] == data["train"].n - 20


def test_scratch_audio_of_the_transfer_comparison_has_the_transferred_architecture(tiny):
    _, _, cache, _ = tiny
    same, transferred = cache["audio_scratch_same_arch"], cache["transfer_finetuned"]
    assert [w.shape for w in same.weights] == [w.shape for w in transferred.weights]
    assert [type(layer).__name__ for layer in encoder_of(same).layers] == [
        type(layer).__name__ for layer in encoder_of(transferred).layers]
    assert count_params(same) >= count_params(transferred)  # BatchNorm trains from scratch

    def layer_types(model):
        inner = getattr(model, "layers", [])
        return {type(model).__name__}.union(*(layer_types(layer) for layer in inner))

    # notebook 04's encoder pools the spectrogram first: another architecture, hence two rows
    assert "AveragePooling2D" in layer_types(cache["audio_scratch"])
    assert "AveragePooling2D" not in layer_types(same) | layer_types(transferred)


def test_text_scratch_has_the_text_source_architecture_and_early3_reads_three(tiny):
    _, _, cache, _ = tiny
    same, transferred = cache["text_scratch"], cache["text_transfer_frozen"]
    assert [w.shape for w in same.weights] == [w.shape for w in transferred.weights]
    assert count_params(transferred) == 4 * 10 + 10  # the frozen encoder's head only
    assert sorted(cache["early3"].input) == sorted(capstone.MODALITIES)
    assert sorted(cache["early"].input) == ["audio", "image"]


def test_chars2vec_probe_is_a_probe_on_the_padded_embeddings(tiny):
    data, _, cache, run = tiny
    assert cache["pad_to"] == max(len(t) for d in data.values() for t in d.x["text"])
    idx = transfer.few_shot_indices(data["train"].y, 2, seed=3)
    embed = {s: chars2vec.embed(list(data[s].x["text"][idx] if s == "train"
                                     else data[s].x["text"]), pad_to=cache["pad_to"])
             for s in ("train", "test")}
    probe = features.make_probe("logistic").fit(embed["train"], data["train"].y[idx])
    np.testing.assert_allclose(run["methods"]["chars2vec_probe"]["probs"],
                               probe.predict_proba(embed["test"]), atol=1e-5)


def test_zero_shot_is_the_sources_as_they_are(tiny):
    data, sources, _, run = tiny
    for m in capstone.MODALITIES:
        x = data["test"].x[m]
        np.testing.assert_allclose(run["methods"][f"zero_shot_{m}"]["probs"], sources[m].predict(
            encode(x) if m == "text" else x, verbose=0), atol=1e-5)
    zero = run["methods"]
    np.testing.assert_allclose(zero["zero_shot_late"]["probs"],
                               (zero["zero_shot_image"]["probs"]
                                + zero["zero_shot_audio"]["probs"]) / 2, atol=1e-6)


def test_late_fusions_weigh_their_experts(tiny):
    _, _, _, run = tiny
    p = {name: r["probs"] for name, r in run["methods"].items()}
    for prefix, experts in (
        ("late", ("image_scratch", "audio_scratch")),
        ("late_pretrained", ("image_transfer_frozen", "transfer_finetuned")),
        ("late3", ("image_scratch", "audio_scratch", "text_scratch")),
        ("late3_pretrained", ("image_transfer_frozen", "transfer_finetuned",
                              "text_transfer_frozen")),
    ):
        np.testing.assert_allclose(p[f"{prefix}_equal"], np.mean([p[e] for e in experts], 0),
                                   atol=1e-6, err_msg=prefix)
        w = run["weights"][f"{prefix}_tuned"]
        np.testing.assert_allclose(p[f"{prefix}_tuned"], sum(
            wi * p[e] for wi, e in zip(w, experts, strict=True)), atol=1e-6, err_msg=prefix)


def test_budget_check_retrains_each_scratch_network(tiny):
    _, _, _, run = tiny
    check = run["budget_check"]
    assert {(r["network"], r["factor"]) for r in check} == {
        (name, f) for name in capstone.SCRATCH for f in (1.0, 2.0)}
    for r in check:
        assert 0 <= r["val_accuracy"] <= 1 and r["steps"] > 0
    gains = capstone.budget_gains(run)
    assert set(gains) == set(capstone.SCRATCH) and all(set(g) == {2.0} for g in gains.values())
    with pytest.raises(ValueError, match="has no budget check"):
        capstone.budget_gains({**run, "budget_check": []})


def test_same_seed_same_probabilities(tiny):
    data, sources, cache, run = tiny
    again = capstone.run_seed(data, sources, seed=3, labels_per_class=2, budget=TINY, cache=cache)
    for name in capstone.METHODS:
        np.testing.assert_allclose(again["methods"][name]["probs"], run["methods"][name]["probs"],
                                   atol=1e-5, err_msg=name)


def test_summary_table_and_saved_numbers(tiny):
    data, _, _, run = tiny
    rows = capstone.result_rows([run], data["test"].y)
    assert len(rows) == len(capstone.METHODS)
    val_rows = capstone.result_rows([run], data["val"].y, split="val")
    assert [r["method"] for r in val_rows] == [r["method"] for r in rows]
    assert any(v["macro_f1"] != r["macro_f1"] for v, r in zip(val_rows, rows, strict=True))
    summary = capstone.summary_rows(rows)
    f1 = [r["macro_f1"] for r in summary]
    assert f1 == sorted(f1, reverse=True)
    saved = capstone.results(summary, [run])
    assert saved["best_method"] == summary[0]["method"]
    for name in capstone.METHODS:
        for key in capstone.SAVED:
            assert f"{name}_{key}" in saved
    assert "late_tuned_macro_f1" in saved and saved["seeds"] == 1
    assert saved["late_pretrained_tuned_w_image"] == run["weights"]["late_pretrained_tuned"][0]
    assert saved["late3_tuned_w_text"] == run["weights"]["late3_tuned"][2]
    assert "budget_x2_gain_crossmodal_student" in saved


def test_compare_pairs_seeds_with_the_one_rule():
    base = [0.70, 0.74, 0.69, 0.72, 0.71]
    rows = [{"method": m, "seed": s, "macro_f1": v + shift}
            for m, shift in (("a", 0.10), ("b", 0.0), ("c", 0.001))
            for s, v in enumerate(base)]
    assert capstone.compare(rows, "a", "b")["diff"] == pytest.approx(0.10)
    assert capstone.compare(rows, "a", "b")["verdict"] == "better"
    assert capstone.compare(rows, "c", "b")["verdict"] == "negligible"
    assert capstone.describe(rows, "b", "a").endswith("5 seeds): worse")
    with pytest.raises(ValueError, match="b='z' is not a method"):
        capstone.compare(rows, "a", "z")
    with pytest.raises(ValueError, match="metric='seconds'"):
        capstone.compare(rows, "a", "b", metric="seconds")


def test_summary_uses_the_median_of_seconds():
    rows = [{"method": "m", "seed": s, "accuracy": 0.5, "macro_recall": 0.5, "macro_f1": 0.5,
             "seconds": sec, "steps": 10, "params": 7} for s, sec in enumerate((9.0, 1.0, 2.0))]
    (entry,) = capstone.summary_rows(rows)
    assert entry["seconds"] == 2.0 and entry["steps"] == 10 and entry["params"] == 7


def test_budget_arithmetic():
    assert capstone.steps_per_epoch(200, 32) == 7
    assert capstone.steps_per_epoch(5, 32) == 1
    assert capstone.epochs_for(140, 200, 32) == 20
    assert capstone.epochs_for(140, 878, 32) == 5
    assert capstone.epochs_for(1, 878, 32) == 1
    for profile in ("fast", "full"):
        assert capstone.check_budget(capstone.BUDGETS[profile]) == capstone.BUDGETS[profile]
    assert capstone.BUDGETS["full"]["seeds"] == 10


def test_bad_budgets_are_refused():
    with pytest.raises(TypeError, match="budget is a list"):
        capstone.check_budget([1, 2])
    with pytest.raises(ValueError, match="expected exactly"):
        capstone.check_budget({k: v for k, v in TINY.items() if k != "steps"})
    with pytest.raises(ValueError, match=r"budget\['steps'\]=0 should be an int >= 1"):
        capstone.check_budget({**TINY, "steps": 0})
    with pytest.raises(ValueError, match=r"budget\['lr'\]=2 should be a float in \(0, 1\)"):
        capstone.check_budget({**TINY, "lr": 2})
    with pytest.raises(ValueError, match="n=0"):
        capstone.steps_per_epoch(0, 32)


def test_run_seed_refuses_bad_arguments(tiny):
    data, sources, cache, _ = tiny
    ok = {"seed": 0, "labels_per_class": 2, "budget": TINY, "cache": cache}
    with pytest.raises(ValueError, match="seed=-1 should be an int >= 0"):
        capstone.run_seed(data, sources, **{**ok, "seed": -1})
    with pytest.raises(ValueError, match="labels_per_class=0"):
        capstone.run_seed(data, sources, **{**ok, "labels_per_class": 0})
    with pytest.raises(ValueError, match="labels every training pair"):
        capstone.run_seed(data, sources, **{**ok, "labels_per_class": 4})
    with pytest.raises(ValueError, match="expected a dict with the Datasets"):
        capstone.run_seed({"train": data["train"]}, sources, **ok)
    with pytest.raises(TypeError, match=r"data\['val'\] is a dict; expected a Dataset"):
        capstone.run_seed({**data, "val": {}}, sources, **ok)
    with pytest.raises(ValueError, match="of pretrained classifiers"):
        capstone.run_seed(data, {"image": sources["image"], "audio": sources["audio"]}, **ok)
    no_text = {s: Dataset("tiny", s, {m: d.x[m] for m in SHAPES}, d.y) for s, d in data.items()}
    with pytest.raises(ValueError, match=r"expected \['audio', 'image', 'text'\]"):
        capstone.run_seed(no_text, sources, **ok)
    ids = {**data, "test": Dataset("tiny", "test", data["test"].x | {
        "text": encode(data["test"].x["text"])}, data["test"].y)}
    with pytest.raises(ValueError, match=r"data\['test'\].x\['text'\] holds int32 values"):
        capstone.run_seed(ids, sources, **ok)
    with pytest.raises(TypeError, match=r"sources\['audio'\] is a str"):
        capstone.run_seed(data, {**sources, "audio": "model"}, **ok)
    with pytest.raises(TypeError, match="cache is a list"):
        capstone.run_seed(data, sources, **{**ok, "cache": []})
    with pytest.raises(ValueError, match=r"check_factors\[0\]=0 should be a float > 0"):
        capstone.run_seed(data, sources, **ok, check_factors=(0,))
    with pytest.raises(TypeError, match="check_factors=2; expected a list of positive numbers"):
        capstone.run_seed(data, sources, **ok, check_factors=2)
    with pytest.raises(ValueError, match="cache holds models built for other data or sources"):
        capstone.run_seed(data, sources, **{**ok, "cache": {"shapes": {"image": (1, 1, 1)}}})
    copies = {s: Dataset("tiny", s, dict(d.x), d.y) for s, d in data.items()}  # other data
    with pytest.raises(ValueError, match="cache holds models built for other data or sources"):
        capstone.run_seed(copies, sources, **ok)
    other = {**sources, "image": sources["audio"], "audio": sources["image"]}  # other weights
    with pytest.raises(ValueError, match="cache holds models built for other data or sources"):
        capstone.run_seed(data, other, **ok)


def test_summaries_refuse_bad_runs(tiny):
    data, _, _, run = tiny
    with pytest.raises(ValueError, match="expected a non-empty list of run_seed results"):
        capstone.result_rows([], data["test"].y)
    with pytest.raises(ValueError, match="expected the same test split"):
        capstone.result_rows([run], data["test"].y[:5])
    with pytest.raises(ValueError, match="expected the same val split"):
        capstone.result_rows([run], data["val"].y[:5], split="val")
    with pytest.raises(ValueError, match="split='train'"):
        capstone.result_rows([run], data["val"].y, split="train")
    with pytest.raises(ValueError, match="summary is empty"):
        capstone.results([], [run])
