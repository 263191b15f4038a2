"""Text transfer: the shared character encoding, the text encoder, the English source, targets."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mmlearn_helpers import data as data_module
from mmlearn_helpers import transfer
from mmlearn_helpers.data import text as tx
from mmlearn_helpers.models import classifier, encoder_of, text_encoder
from mmlearn_helpers.settings import TEXT_01
from mmlearn_helpers.training import predict_proba

VOCAB = len(tx.vocabulary())


def test_encode_gives_every_language_the_same_ids():
    ids = tx.encode(["seven", "sieben", "семь", "(sept)"])
    assert ids.shape == (4, tx.MAX_LEN) and ids.dtype == np.int32
    vocab = tx.vocabulary()
    assert vocab[:2] == ["", "[UNK]"] and len(set(vocab)) == VOCAB
    np.testing.assert_array_equal(ids[0, :5], [vocab.index(c) for c in "seven"])
    assert ids[0, 0] == ids[1, 0] == ids[3, 1] and (ids[0, 5:] == 0).all()
    # a string's ids do not depend on which other strings or languages are encoded with it
    german = tx.clean_texts("train", "de")[0]
    mixed = tx.clean_texts("train", ["ar", "de", "ja"])
    alone, together = tx.encode(german), tx.encode(mixed[0][mixed[2]["language"] == "de"])
    np.testing.assert_array_equal(alone, together)
    # the alphabet of all languages' clean train strings, nothing else
    reference = tx.text_vectorizer(tx.clean_texts("train", "all")[0], max_len=tx.MAX_LEN)
    assert vocab == [str(t) for t in reference.get_vocabulary()]


def test_encode_marks_unseen_characters_pads_and_cuts():
    ids = tx.encode(["«seven»", tx.UNREADABLE, "x" * 40], max_len=40)
    assert ids.shape == (3, 40)
    assert ids[0, 0] == ids[0, 6] == 1 and ids[1, 0] == 1 and (ids[1, 1:] == 0).all()
    assert (ids[2, :tx.MAX_LEN] > 1).all() and (ids[2, tx.MAX_LEN:] == 0).all()
    assert tx.encode(["seven"], max_len=3).shape == (1, 3)
    assert tx.encode([]).shape == (0, tx.MAX_LEN)
    with pytest.raises(ValueError, match="texts"):
        tx.encode(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="max_len"):
        tx.encode(["seven"], max_len=0)


def test_ids_survive_the_float32_inputs_of_fit_exactly():
    ids = tx.encode(tx.clean_texts("test", "all")[0])
    assert VOCAB < 2**24 and ids.max() == VOCAB - 1  # float32 holds every id exactly
    np.testing.assert_array_equal(ids.astype(np.float32).astype(np.int32), ids)
    keras.utils.set_random_seed(0)
    model = classifier(text_encoder(tx.MAX_LEN, VOCAB))
    by_int = keras.ops.convert_to_numpy(model(ids[:64], training=False))
    np.testing.assert_array_equal(by_int, predict_proba(model, ids[:64].astype(np.float32)))


def test_text_encoder_fits_the_transfer_machinery():
    keras.utils.set_random_seed(0)
    encoder = text_encoder(tx.MAX_LEN, VOCAB, (8, 16))
    assert encoder.name == "encoder" and tuple(encoder.outputs[0].shape) == (None, 16)
    names = {layer.name for layer in encoder.layers}
    assert {"char_embedding", "block0_conv", "block0_bn", "block1_conv", "features"} <= names
    model = classifier(encoder)
    assert encoder_of(model) is encoder
    frozen = transfer.transfer_model("frozen", model, n_classes=10)
    assert not encoder_of(frozen).trainable
    np.testing.assert_array_equal(encoder_of(frozen).get_layer("char_embedding").get_weights()[0],
                                  encoder.get_layer("char_embedding").get_weights()[0])
    for bad in ({"pooling": "sum"}, {"filters": ()}, {"embed_dim": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            text_encoder(tx.MAX_LEN, VOCAB, **bad)
    with pytest.raises(ValueError, match="vocab_size"):
        text_encoder(tx.MAX_LEN, 1)


def test_text_target_is_seeded_split_by_frame_and_encoded():
    x_train, y_train, x_test, y_test = transfer.text_target("de", seed=0, noise=0.3)
    assert x_train.shape == (360, tx.MAX_LEN) and x_test.shape == (180, tx.MAX_LEN)
    assert np.bincount(y_train).tolist() == [36] * 10 and x_train.dtype == np.int32
    again = transfer.text_target("de", seed=0, noise=0.3)
    for a, b in zip((x_train, y_train, x_test, y_test), again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(x_train, transfer.text_target("de", seed=1, noise=0.3)[0])
    clean_train, _, clean_test, _ = transfer.text_target("de")
    assert not {r.tobytes() for r in clean_train} & {r.tobytes() for r in clean_test}
    raw = transfer.text_target("ar", forms=["word"])
    assert raw[0].shape == (120, tx.MAX_LEN) and raw[2].shape == (60, tx.MAX_LEN)
    via = transfer.transfer_targets("text_digits", language="de", text_options={"noise": 0.3})
    assert list(via) == ["text"]
    for a, b in zip(via["text"], (x_train, y_train, x_test, y_test), strict=True):
        np.testing.assert_array_equal(a, b)


def test_text_targets_refuse_bad_options():
    with pytest.raises(ValueError, match="forms"):
        transfer.text_target("de", forms=["ascii"])
    with pytest.raises(TypeError, match="forms"):
        transfer.text_target("de", forms="word")
    with pytest.raises(ValueError, match="language"):
        transfer.text_target("xx")
    with pytest.raises(TypeError, match="text_options"):
        transfer.transfer_targets("text_digits", language="de", text_options={"snr_db": 5})
    with pytest.raises(ValueError, match="text_options"):
        transfer.transfer_targets("av_digits", text_options={"noise": 0.3})
    with pytest.raises(ValueError, match="modalities"):
        transfer.transfer_targets("text_digits", language="de", modalities=("image",))
    with pytest.raises(ValueError, match="audio_options"):
        transfer.transfer_targets("text_digits", language="de", audio_options={})


def test_the_text_source_reads_english_train_strings_only(monkeypatch):
    seen = []
    load = data_module.load_dataset

    def spy(name, **kwargs):
        got = load(name, **kwargs)
        seen.append((name, kwargs["split"], set(got.meta["language"]), set(got.meta["template"])))
        return got

    monkeypatch.setattr(data_module, "load_dataset", spy)
    recipe = transfer.SOURCE_AUGMENT["text_digits"]
    x, y = transfer._source_training_set("text_digits", 0, recipe, {})
    assert len(seen) == 1 + recipe["copies"] and len(x) == len(y) == 360 * len(seen)
    assert all(name == "text_digits" and split == "train" and langs == {"en"}
               for name, split, langs, _ in seen)
    assert set().union(*(frames for *_, frames in seen)) == set(tx.frames("train"))
    np.testing.assert_array_equal(x[:360], tx.encode(tx.clean_texts("train", "en")[0]))
    with pytest.raises(ValueError, match="language='de'"):
        transfer.pretrained_source("text_digits", language="de")


@pytest.fixture(scope="module")
def text_sources(tmp_path_factory):
    """The fast English text source for seeds 0-2, pretrained into a fresh cache."""
    cache = tmp_path_factory.mktemp("text_cache")
    return {s: transfer.pretrained_source("text_digits", seed=s, cache_dir=cache)
            for s in (0, 1, 2)}


def test_text_source_is_cached_and_reads_english(text_sources, tmp_path_factory):
    cache = next(iter(tmp_path_factory.getbasetemp().glob("text_cache*")))
    assert len(list(cache.glob("text_digits-*.weights.h5"))) == 3
    again = transfer.pretrained_source("text_digits", seed=0, cache_dir=cache)
    for a, b in zip(again.get_weights(), text_sources[0].get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    _, _, x_val, y_val = transfer.text_target("en", noise=0.3, eval_split="val")
    assert (predict_proba(again, x_val).argmax(1) == y_val).mean() > 0.8


def test_english_text_transfers_to_german_at_one_label_per_class(text_sources):
    """Frozen English features beat scratch on noisy German (new frames) with k=1, every seed."""
    data = transfer.text_target("de", noise=0.3)
    rows, _ = transfer.learning_curve(text_sources, *data, ks=(1,), methods=("scratch", "frozen"),
                                      verbose=False, **TEXT_01)
    acc = {(r["method"], r["seed"]): r["accuracy"] for r in rows}
    gaps = [acc["frozen", s] - acc["scratch", s] for s in (0, 1, 2)]
    assert min(gaps) > 0 and np.mean(gaps) > 0.1, gaps
