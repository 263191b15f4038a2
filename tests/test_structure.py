"""Structure transfer: a structure searched on the source, weights copied across modalities."""

import keras
import numpy as np
import pytest

from mmlearn_helpers.data import load_dataset
from mmlearn_helpers.data.text import vocabulary
from mmlearn_helpers.models import classifier, conv_encoder, count_params, mlp_encoder
from mmlearn_helpers.structure import (
    BLUEPRINT,
    CANDIDATES,
    CHOSEN,
    RANDOM,
    candidate_starts,
    choice_rows,
    chosen,
    compare_starts,
    conv_layer_names,
    conv_start,
    matched_mlp_units,
    prepare_fine_tune,
    ranking,
    refresh_batchnorm,
    scores,
    search_structure,
    split_speakers,
    start_from,
    text_image_encoder,
    text_start,
)
from mmlearn_helpers.transfer import text_target

AUDIO = (32, 40, 1)
TINY = {"tiny average": {"filters": (4,), "pooling": "average"},
        "tiny flatten": {"filters": (4,), "pooling": "flatten"}}


def _conv(shape, seed):
    keras.utils.set_random_seed(seed)
    return classifier(conv_encoder(shape, (4, 8)))


@pytest.fixture(scope="module")
def source():
    return load_dataset("spoken_digits", split="source")


def test_image_conv_kernels_copy_into_an_audio_model_and_nothing_else():
    image, audio = _conv((8, 8, 1), 0), _conv(AUDIO, 1)
    bn_before = audio.get_layer("encoder").get_layer("block0_bn").get_weights()
    copied = start_from(audio, image, conv_layer_names(image))
    assert copied == ["block0_conv", "block1_conv"]
    src, dst = image.get_layer("encoder"), audio.get_layer("encoder")
    for name in copied:
        np.testing.assert_array_equal(src.get_layer(name).get_weights()[0],
                                      dst.get_layer(name).get_weights()[0])
    for a, b in zip(bn_before, dst.get_layer("block0_bn").get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # BatchNorm not in the list: untouched
    assert not np.allclose(audio.get_layer("head").get_weights()[0],
                           image.get_layer("head").get_weights()[0])


def test_start_from_refuses_mismatched_filters():
    with pytest.raises(ValueError, match="shapes"):
        start_from(_conv(AUDIO, 0), classifier(conv_encoder((8, 8, 1), (8, 8))))


def test_matched_mlp_has_about_the_conv_models_parameter_count():
    target = count_params(classifier(conv_encoder(AUDIO)))
    units = matched_mlp_units(AUDIO, target)
    got = count_params(classifier(mlp_encoder(AUDIO, (units,))))
    assert abs(got - target) / target < 0.05, (units, got, target)
    with pytest.raises(ValueError, match="n_params=0"):
        matched_mlp_units(AUDIO, 0)


def test_candidates_build_the_shapes_they_name_and_are_seeded():
    assert BLUEPRINT in CANDIDATES
    features = {name: classifier(conv_encoder(AUDIO, **spec)).get_layer("encoder").outputs[0]
                for name, spec in CANDIDATES.items()}
    assert features["16-32 average"].shape[1] == 32
    assert features["16-32 flatten"].shape[1] == 8 * 10 * 32  # two 2x2 pools of 32x40
    assert features["16-32-32-64 flatten"].shape[1] == 2 * 2 * 64
    starts = candidate_starts(AUDIO, ["16-32 average", "16-32-32 flatten"])
    assert list(starts) == ["16-32 average", "16-32-32 flatten"]
    model = starts["16-32-32 flatten"](3)
    assert tuple(model.inputs[0].shape[1:]) == AUDIO and model.outputs[0].shape[-1] == 10
    for a, b in zip(model.get_weights(), starts["16-32-32 flatten"](3).get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(model.get_weights()[0], starts["16-32-32 flatten"](4).get_weights()[0])


def test_conv_start_refuses_unknown_structures():
    with pytest.raises(ValueError, match="structure='wide'"):
        conv_start(AUDIO, "wide")
    with pytest.raises(TypeError, match="structure=3"):
        conv_start(AUDIO, 3)
    with pytest.raises(ValueError, match="pooling='max'"):
        conv_start(AUDIO, {"pooling": "max"})
    with pytest.raises(ValueError, match="names is empty"):
        candidate_starts(AUDIO, [])
    with pytest.raises(TypeError, match="names='16-32 average'"):
        candidate_starts(AUDIO, "16-32 average")


def test_refresh_batchnorm_takes_the_statistics_of_the_data(source):
    model = _conv(AUDIO, 0)
    x = source.x["audio"][:40]
    assert refresh_batchnorm(model, x) == 2
    encoder = model.get_layer("encoder")
    conv = keras.Model(encoder.inputs, encoder.get_layer("block0_conv").output)
    out = conv.predict(x, verbose=0).reshape(-1, 4)
    bn = encoder.get_layer("block0_bn")
    np.testing.assert_allclose(np.asarray(bn.moving_mean), out.mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(np.asarray(bn.moving_variance), out.var(axis=0), rtol=1e-3)
    assert bn.trainable and bn.momentum == pytest.approx(0.9)  # restored
    with pytest.raises(TypeError, match="keras.Model"):
        refresh_batchnorm("model", x)


def test_prepare_fine_tune_freezes_batchnorm_and_fits_the_head(source):
    model = _conv(AUDIO, 0)
    kernel = model.get_layer("encoder").get_layer("block0_conv").get_weights()[0].copy()
    x, y = source.x["audio"][:100], source.y[:100]
    prepare_fine_tune(model, x, y)
    layers = model.get_layer("encoder").layers
    assert all(not layer.trainable for layer in layers if "bn" in layer.name)
    np.testing.assert_array_equal(kernel, model.get_layer("encoder").get_layer("block0_conv")
                                  .get_weights()[0])
    assert (model.predict(x, verbose=0).argmax(1) == y).mean() > 0.2  # the head was fitted


def test_compare_starts_trains_each_start_on_the_same_subsets():
    train, test = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    starts = {"conv": lambda s: _conv((8, 8, 1), s),
              "mlp": lambda s: classifier(mlp_encoder((8, 8, 1), (16,)))}
    rows, summary = compare_starts(starts, train.x["image"], train.y, test.x["image"], test.y,
                                   k=5, seeds=(0, 1), epochs=30, verbose=False)
    assert [(r["start"], r["seed"]) for r in rows] == [
        ("conv", 0), ("mlp", 0), ("conv", 1), ("mlp", 1)]
    assert [s["start"] for s in summary] == ["conv", "mlp"]
    assert all(s["n"] == 2 and s["accuracy"] > 0.3 for s in summary), summary


def test_compare_starts_fine_tunes_the_named_starts_deterministically():
    train, test = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    starts = {"scratch": lambda s: _conv((8, 8, 1), s), "gentle": lambda s: _conv((8, 8, 1), s)}

    def run():
        rows, _ = compare_starts(starts, train.x["image"], train.y, test.x["image"], test.y,
                                 k=3, seeds=(0,), epochs=5, fine_tune=["gentle"], verbose=False)
        return rows

    first, again = run(), run()  # the second call reuses the compiled models
    assert [r["recipe"] for r in first] == ["scratch", "fine-tune"]
    assert [r["accuracy"] for r in first] == [r["accuracy"] for r in again]


def test_compare_starts_refuses_bad_arguments():
    train = load_dataset("digits", split="train")
    x, y = train.x["image"], train.y
    good = {"conv": lambda s: _conv((8, 8, 1), s)}
    with pytest.raises(ValueError, match="k=200 is larger"):
        compare_starts(good, x, y, x, y, k=200, verbose=False)
    with pytest.raises(TypeError, match="callable"):
        compare_starts({"conv": 3}, x, y, x, y, verbose=False)
    with pytest.raises(ValueError, match="reading"):
        compare_starts({"audio": lambda s: _conv(AUDIO, s)}, x, y, x, y, k=1, seeds=(0,),
                       epochs=1, verbose=False)
    with pytest.raises(ValueError, match="non-empty"):
        compare_starts({}, x, y, x, y, verbose=False)
    with pytest.raises(ValueError, match=r"fine_tune names \['mlp'\]"):
        compare_starts(good, x, y, x, y, fine_tune=["mlp"], verbose=False)
    with pytest.raises(TypeError, match="fine_tune='conv'"):
        compare_starts(good, x, y, x, y, fine_tune="conv", verbose=False)
    with pytest.raises(ValueError, match="fine_tune_lr=0"):
        compare_starts(good, x, y, x, y, fine_tune_lr=0, verbose=False)
    with pytest.raises(TypeError, match="k=2.5"):
        compare_starts(good, x, y, x, y, k=2.5, verbose=False)
    with pytest.raises(ValueError, match="seeds is empty"):
        compare_starts(good, x, y, x, y, seeds=(), verbose=False)


def test_split_speakers_holds_out_whole_speakers(source):
    speakers = source.meta["speaker"]
    fit_idx, val_idx = split_speakers(speakers, val_fraction=0.5, seed=1)
    assert len(fit_idx) + len(val_idx) == len(speakers)
    assert not set(speakers[fit_idx]) & set(speakers[val_idx])
    assert len(set(speakers[val_idx])) == len(set(speakers)) // 2
    again = split_speakers(speakers, val_fraction=0.5, seed=1)
    np.testing.assert_array_equal(val_idx, again[1])
    assert not np.array_equal(val_idx, split_speakers(speakers, val_fraction=0.5, seed=2)[1])
    with pytest.raises(ValueError, match="val_fraction=1.0"):
        split_speakers(speakers, val_fraction=1.0)
    with pytest.raises(TypeError, match="val_fraction='half'"):
        split_speakers(speakers, val_fraction="half")
    with pytest.raises(ValueError, match="speakers has shape"):
        split_speakers(np.array([]))


def test_search_structure_scores_on_held_out_source_speakers_only(source):
    starts = {name: conv_start(AUDIO, spec) for name, spec in TINY.items()}
    x, y, speakers = source.x["audio"], source.y, source.meta["speaker"]
    rows = search_structure(starts, x, y, speakers, k=2, seeds=(0, 1), epochs=3, cache=False,
                            verbose=False)
    assert [(r["start"], r["seed"]) for r in rows] == [
        ("tiny average", 0), ("tiny flatten", 0), ("tiny average", 1), ("tiny flatten", 1)]
    val = {seed: split_speakers(speakers, seed=seed)[1] for seed in (0, 1)}
    assert all(r["source_val"] * len(val[r["seed"]]) == pytest.approx(
        round(r["source_val"] * len(val[r["seed"]]))) for r in rows)  # a share of val clips
    again = search_structure(starts, x, y, speakers, k=2, seeds=(0, 1), epochs=3, cache=False,
                             verbose=False)
    assert [r["source_val"] for r in rows] == [r["source_val"] for r in again]
    with pytest.raises(ValueError, match="speakers has 3 ids"):
        search_structure(starts, x, y, speakers[:3], verbose=False)
    with pytest.raises(TypeError, match="cache='yes'"):
        search_structure(starts, x, y, speakers, cache="yes", verbose=False)


def test_search_structure_is_cached_by_its_inputs(source, tmp_path, monkeypatch):
    starts = {"tiny average": conv_start(AUDIO, TINY["tiny average"])}
    x, y, speakers = source.x["audio"], source.y, source.meta["speaker"]
    options = {"k": 2, "seeds": (0,), "epochs": 2, "cache_dir": tmp_path, "verbose": False}
    rows = search_structure(starts, x, y, speakers, **options)
    assert len(list(tmp_path.glob("structure_search-*.json"))) == 1

    def no_training(*args, **kwargs):
        raise AssertionError("a cached search trained again")

    monkeypatch.setattr("mmlearn_helpers.structure.compare_starts", no_training)
    assert search_structure(starts, x, y, speakers, **options) == rows
    with pytest.raises(AssertionError, match="trained again"):  # other labels: another key
        search_structure(starts, x, (y + 1) % 10, speakers, **options)


def test_search_structure_cuts_k_to_what_the_fitting_speakers_hold(source, capsys):
    starts = {"tiny average": conv_start(AUDIO, TINY["tiny average"])}
    rows = search_structure(starts, source.x["audio"], source.y, source.meta["speaker"], k=50,
                            seeds=(0,), epochs=1, cache=False, verbose=False)
    assert rows[0]["k"] == 12  # 12 of the 24 source voices fit, one clip per digit each
    assert "asked for 50" in capsys.readouterr().out


def _search_rows():
    return [{"start": "a", "seed": 0, "source_val": 0.5}, {"start": "b", "seed": 0,
                                                           "source_val": 0.7},
            {"start": "a", "seed": 1, "source_val": 0.6}, {"start": "b", "seed": 1,
                                                           "source_val": 0.6}]


def _target_rows(a, b):
    return [{"start": name, "seed": seed, "k": 5, "accuracy": acc, "macro_recall": acc,
             "macro_f1": acc} for seed in (0, 1) for name, acc in (("a", a[seed]),
                                                                   ("b", b[seed]))]


def test_chosen_picks_by_source_validation_and_never_by_target_scores():
    assert chosen(_search_rows()) == {0: "b", 1: "a"}  # a tie goes to the earlier candidate
    target = _target_rows(a=(0.9, 0.1), b=(0.1, 0.9))  # the target says the opposite
    rows = choice_rows(target, _search_rows())
    picked = {(r["start"], r["seed"]): r for r in rows}
    assert picked[(CHOSEN, 0)]["accuracy"] == 0.1 and picked[(CHOSEN, 0)]["picked"] == "b"
    assert picked[(CHOSEN, 1)]["accuracy"] == 0.1
    assert picked[(RANDOM, 0)]["accuracy"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="source_val"):
        chosen(target)  # target rows hold no source validation score to choose by
    with pytest.raises(ValueError, match="empty"):
        chosen([])
    with pytest.raises(ValueError, match="lack seed 1"):
        choice_rows(target[:2], _search_rows())


def test_ranking_correlates_source_and_target_orders():
    table, rho = ranking(_search_rows(), _target_rows(a=(0.2, 0.3), b=(0.6, 0.7)))
    assert [t["structure"] for t in table] == ["a", "b"]
    assert table[1]["source_val"] == pytest.approx(0.65)
    assert table[1]["target_test"] == pytest.approx(0.65)
    assert [t["picked"] for t in table] == [1, 1]
    assert rho == pytest.approx(1.0)
    _, rho = ranking(_search_rows(), _target_rows(a=(0.8, 0.9), b=(0.6, 0.7)))
    assert rho == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="lack candidate 'a' at seeds \\[1\\]"):
        ranking(_search_rows(), _target_rows(a=(0.2, 0.3), b=(0.6, 0.7))[:1])


def test_scores_are_in_seed_order_for_pairing():
    rows = [{"start": "a", "seed": 1, "accuracy": 0.2}, {"start": "a", "seed": 0, "accuracy": 0.4},
            {"start": "b", "seed": 0, "accuracy": 0.9}]
    assert scores(rows, "a") == [0.4, 0.2]
    with pytest.raises(ValueError, match="start='c'"):
        scores(rows, "c")


def test_text_image_encoder_reads_the_embedding_as_an_image_with_the_blueprints_names():
    encoder = text_image_encoder(12, 20, BLUEPRINT, embed_dim=6)
    assert tuple(encoder.inputs[0].shape[1:]) == (12,)
    assert tuple(encoder.get_layer("as_image").output.shape[1:]) == (12, 6, 1)
    assert encoder.outputs[0].shape[-1] == 32  # the blueprint's last width, average pooling
    image = classifier(conv_encoder((8, 8, 1)))  # an image model of the blueprint
    model = text_start(12, 20, BLUEPRINT)(0)
    assert conv_layer_names(model) == conv_layer_names(image)
    assert start_from(model, image, conv_layer_names(image)) == conv_layer_names(image)
    flatten = text_image_encoder(12, 20, {"filters": (4,), "pooling": "flatten"}, embed_dim=6)
    assert flatten.outputs[0].shape[-1] == 6 * 3 * 4  # one 2x2 pool of 12x6


def test_text_start_builds_the_text_structure_or_an_image_one_seeded():
    one_d = text_start(12, 20)
    model = one_d(3)
    encoder = model.get_layer("encoder")
    assert tuple(model.inputs[0].shape[1:]) == (12,) and model.outputs[0].shape[-1] == 10
    assert any(isinstance(layer, keras.layers.Conv1D) for layer in encoder.layers)
    assert conv_layer_names(model) == []  # no Conv2D: nothing of an image model fits
    for make in (one_d, text_start(12, 20, "16-32 average")):
        for a, b in zip(make(3).get_weights(), make(3).get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
        assert not np.allclose(make(3).get_weights()[0], make(4).get_weights()[0])


def test_text_starts_refuse_bad_arguments():
    with pytest.raises(ValueError, match="structure='wide'"):
        text_start(12, 20, "wide")
    with pytest.raises(TypeError, match="structure=3"):
        text_image_encoder(12, 20, 3)
    with pytest.raises(ValueError, match="max_len=0"):
        text_start(0, 20)
    with pytest.raises(ValueError, match="vocab_size=1"):
        text_image_encoder(12, 1)
    with pytest.raises(ValueError, match="embed_dim=0"):
        text_image_encoder(12, 20, embed_dim=0)


def test_both_text_structures_learn_character_ids():
    data = text_target("de", seed=0, noise=0.0)
    vocab = len(vocabulary())  # one id space for every language
    starts = {"1-D": text_start(data[0].shape[1], vocab),
              "2-D": text_start(data[0].shape[1], vocab, {"filters": (8, 8)})}
    _, summary = compare_starts(starts, *data, k=5, seeds=(0,), epochs=40, lr=1e-2,
                                verbose=False)
    assert all(s["accuracy"] > 0.3 for s in summary), summary  # chance is 0.1
