"""Tests of the data layer: shipped files, loaders, splits, degradations and every error."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import numpy as np
import pytest
from conftest import tone, write_wav

from mmlearn_helpers.data import (
    N_FRAMES,
    N_MELS,
    SPLITS,
    Dataset,
    audio,
    languages,
    load_dataset,
    playback_clips,
    spoken,
)
from mmlearn_helpers.data import avmnist as av
from mmlearn_helpers.data.images import render_printed
from mmlearn_helpers.data.paired import pair_by_label
from mmlearn_helpers.data.spoken import DATA_DIR, load_npz, shipped

# ---------------------------------------------------------------- shipped files


def test_data_folder_is_small_and_manifest_matches():
    total = sum(p.stat().st_size for p in DATA_DIR.rglob("*") if p.is_file())
    assert total < 20e6, f"data/ holds {total / 1e6:.1f} MB"
    manifest = json.loads((DATA_DIR / "manifest.json").read_text())
    assert manifest["files"], "manifest lists no files"
    for name, entry in manifest["files"].items():
        data = (DATA_DIR / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
        assert len(data) == entry["bytes"], name
    assert "eSpeak NG" in manifest["build"]["espeak_ng_version"]


def test_enough_distinct_speakers_and_languages():
    langs = languages()
    assert langs[0] == "en" and len(langs) >= 6
    names = set()
    for split in SPLITS:
        d = load_dataset("spoken_digits", split=split, language="all")
        names |= set(d.meta["speaker"].tolist())
    en = {s for s in names if s.startswith("en")}
    assert len(en) >= 30
    for lang in langs[1:]:
        per_split = [
            len(set(load_dataset("spoken_digits", split=s, language=lang).meta["speaker"]))
            for s in SPLITS
        ]
        assert min(per_split) >= 2, (lang, per_split)


# ---------------------------------------------------------------- shapes, ranges, balance


@pytest.mark.parametrize("name", ["digits", "printed_digits", "spoken_digits", "av_digits"])
@pytest.mark.parametrize("split", SPLITS)
def test_shapes_dtypes_ranges(name, split):
    d = load_dataset(name, split=split)
    assert isinstance(d, Dataset) and d.name == name and d.split == split and d.n > 0
    assert d.y.dtype == np.int64 and d.y.min() >= 0 and d.y.max() <= 9
    assert set(np.unique(d.y)) == set(range(10))
    if "image" in d.x:
        x = d.x["image"]
        assert x.shape == (d.n, 8, 8, 1) and x.dtype == np.float32
        assert 0.0 <= x.min() and x.max() <= 1.0
    if "audio" in d.x:
        x = d.x["audio"]
        assert x.shape == (d.n, N_MELS, N_FRAMES, 1) and x.dtype == np.float32
        assert np.isfinite(x).all()
    for values in d.meta.values():
        assert len(values) == d.n


def test_digits_split_is_stratified_disjoint_and_complete():
    parts = [load_dataset("digits", split=s) for s in SPLITS]
    indices = np.concatenate([p.meta["index"] for p in parts])
    assert len(indices) == 1797 and len(set(indices.tolist())) == 1797
    for p, frac in zip(parts, (0.6, 0.2, 0.2), strict=True):
        assert abs(p.n / 1797 - frac) < 0.01
        counts = np.bincount(p.y, minlength=10)
        assert counts.max() - counts.min() <= 6


def test_printed_digits_look_like_handwritten_ones():
    printed = load_dataset("printed_digits", split="val").x["image"]
    handwritten = load_dataset("digits", split="val").x["image"]
    # same 17 grey levels, similar ink coverage
    assert np.allclose(printed * 16, np.round(printed * 16))
    assert abs(printed.mean() - handwritten.mean()) < 0.1
    peaks = printed.reshape(len(printed), -1).max(axis=1)
    assert (peaks > 0.25).all() and (peaks > 0.5).mean() > 0.97


def test_printed_options_change_images_and_n_is_honoured():
    base = render_printed(200, seed=3)[0]
    assert base.shape == (200, 8, 8, 1)
    for option in ({"elastic": 2.0}, {"blur": 0.8}, {"rotation": 30.0}, {"noise": 0.2}):
        assert not np.array_equal(base, render_printed(200, seed=3, **option)[0]), option
    assert load_dataset("printed_digits", split="test", n=30).n == 30


# ---------------------------------------------------------------- determinism and splits


@pytest.mark.parametrize(
    "name, options",
    [
        ("printed_digits", {}),
        ("spoken_digits", {"snr_db": 0, "noise": "pink", "speed": 0.1, "pitch": 1, "reverb": 0.2}),
        ("av_digits", {"snr_db": 5, "image_noise": 0.2, "occlusion": 0.25}),
    ],
)
def test_same_seed_same_data_other_seed_other_data(name, options):
    a = load_dataset(name, split="val", seed=1, **options)
    b = load_dataset(name, split="val", seed=1, **options)
    c = load_dataset(name, split="val", seed=2, **options)
    for key in a.x:
        assert np.array_equal(a.x[key], b.x[key])
        assert not np.array_equal(a.x[key], c.x[key])
    assert np.array_equal(a.y, b.y)


def _recordings(split: str, language: str = "all") -> set[bytes]:
    """The raw int16 bytes of every shipped clip of a split: a recording, whatever its speaker."""
    z = shipped()
    idx = spoken.select(split, language)
    return {z["waves"][z["offsets"][i]:z["offsets"][i + 1]].tobytes() for i in idx}


def test_audio_splits_never_share_speakers_or_recordings():
    splits = spoken.SPEAKER_SPLITS
    meta = {s: load_dataset("spoken_digits", split=s,
                            language="en" if s == "source" else "all").meta for s in splits}
    clips = {s: _recordings(s, "en" if s == "source" else "all") for s in splits}
    for i, one in enumerate(splits):
        for other in splits[i + 1:]:
            assert not set(meta[one]["speaker"]) & set(meta[other]["speaker"]), (one, other)
            assert not clips[one] & clips[other], (one, other)


def test_speech_source_trains_on_source_voices_only(monkeypatch, tmp_path):
    import mmlearn_helpers.data as data_module
    from mmlearn_helpers import transfer

    asked = []

    def spy(name, **kwargs):
        asked.append(kwargs.get("split"))
        return load_dataset(name, **kwargs)

    monkeypatch.setattr(data_module, "load_dataset", spy)
    monkeypatch.setitem(transfer.PRETRAIN["spoken_digits"], "fast",
                        {"epochs": 1, "lr": 1e-2, "batch_size": 256})
    transfer.pretrained_source("spoken_digits", cache_dir=tmp_path, filters=(4,))
    assert asked and set(asked) == {"source"}
    targets = {s: set(load_dataset("av_digits", split=s).meta["speaker"]) for s in SPLITS}
    source = set(load_dataset("spoken_digits", split="source").meta["speaker"])
    assert all(not source & voices for voices in targets.values())


def test_val_and_test_voices_are_alike():
    kinds = {s: Counter(spoken.voice_kind(v) for v in
                        load_dataset("spoken_digits", split=s).meta["variant"]) for s in SPLITS}
    for kind in ("female", "male", "unmarked"):
        shares = [kinds[s][kind] / sum(kinds[s].values()) for s in SPLITS]
        assert max(shares) - min(shares) <= 0.1, (kind, kinds)


def test_source_split_is_spoken_english_only():
    with pytest.raises(ValueError, match="split='source'.*English only"):
        load_dataset("spoken_digits", split="source", language="fr")
    with pytest.raises(ValueError, match=r"split='source' is not known; expected one of \("):
        load_dataset("av_digits", split="source")


def test_splits_do_not_depend_on_seed():
    a = load_dataset("spoken_digits", split="test", seed=0).meta["speaker"]
    b = load_dataset("spoken_digits", split="test", seed=5).meta["speaker"]
    assert np.array_equal(a, b)
    assert np.array_equal(
        load_dataset("digits", split="test", seed=0).meta["index"],
        load_dataset("digits", split="test", seed=9).meta["index"],
    )


def test_language_filter():
    fr = load_dataset("spoken_digits", split="train", language="fr")
    assert set(fr.meta["language"]) == {"fr"}
    both = load_dataset("spoken_digits", split="train", language=["en", "fr"])
    assert both.n == fr.n + load_dataset("spoken_digits", split="train").n


def test_av_digits_pairs_same_digit_from_the_same_split():
    for split in SPLITS:
        d = load_dataset("av_digits", split=split, language="de", seed=4)
        voices = load_dataset("spoken_digits", split=split, language="de").meta["speaker"]
        assert set(d.meta["speaker"]) <= set(voices)
        assert set(d.meta["language"]) == {"de"}
        images = load_dataset("digits", split=split)
        assert np.array_equal(d.x["image"], images.x["image"])


def test_av_digits_clip_labels_match_image_labels():
    from mmlearn_helpers.data import shipped

    d = load_dataset("av_digits", split="train", seed=7)
    assert np.array_equal(shipped()["digit"][d.meta["clip_index"]], d.y)


def test_pair_by_label_balances_clip_use():
    y_img = np.repeat(np.arange(10), 30)
    y_aud = np.repeat(np.arange(10), 3)
    chosen = pair_by_label(y_img, y_aud, seed=0)
    assert np.array_equal(y_aud[chosen], y_img)
    assert set(np.bincount(chosen).tolist()) == {10}


# ---------------------------------------------------------------- degradations


def test_noise_lowers_snr_as_asked():
    rng = np.random.default_rng(0)
    clean = [np.sin(np.arange(3000) * 0.3).astype(np.float32) * 0.5 for _ in range(4)]
    for snr in (-10.0, 0.0, 10.0):
        noisy, _ = audio.degrade(clean, seed=int(rng.integers(100)), snr_db=snr)
        ref, _ = audio.degrade(clean)
        noise = noisy - ref
        speech = ref[np.abs(ref) > 0.005]
        measured = 10 * np.log10(np.mean(speech**2) / np.mean(noise**2, axis=1))
        assert np.allclose(measured, snr, atol=0.5)


def test_degradations_make_audio_harder_to_match():
    clean = load_dataset("spoken_digits", split="val").x["audio"]
    close = load_dataset("spoken_digits", split="val", snr_db=20).x["audio"]
    far = load_dataset("spoken_digits", split="val", snr_db=-10, noise="babble").x["audio"]
    assert np.abs(close - clean).mean() < np.abs(far - clean).mean()
    for option in ({"speed": 0.15}, {"pitch": 2.0}, {"reverb": 0.4}, {"gain_db": 10.0}):
        changed = load_dataset("spoken_digits", split="val", **option).x["audio"]
        assert not np.allclose(changed, clean), option


def test_image_degradations():
    clean = load_dataset("av_digits", split="val").x["image"]
    occluded = load_dataset("av_digits", split="val", occlusion=0.25).x["image"]
    blanked = (occluded == 0) & (clean > 0)
    assert blanked.any() and (occluded <= clean).all()
    noisy = load_dataset("av_digits", split="val", image_noise=0.3).x["image"]
    assert 0 <= noisy.min() and noisy.max() <= 1 and not np.array_equal(noisy, clean)


def test_playback_clips():
    clips, y, meta = playback_clips(digit=7, n=3, language="es")
    assert clips.shape == (3, audio.CLIP_SAMPLES) and (y == 7).all()
    assert set(meta["language"]) == {"es"} and np.abs(clips).max() <= 1.0


def test_waveform_pipeline_resamples_downmixes_and_refuses_low_rates():
    t = np.arange(16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    stereo = np.stack([tone, tone], axis=1)
    out = audio.prepare_waveform(stereo, 16000)
    assert out.ndim == 1 and abs(len(out) - 8000) < 400
    assert np.isclose(np.abs(out).max(), audio.PEAK_LEVEL)
    with pytest.raises(ValueError, match="4000 Hz"):
        audio.prepare_waveform(tone, 4000, name="x.wav")
    with pytest.raises(ValueError, match="silent"):
        audio.prepare_waveform(np.zeros(800), 8000)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: load_dataset("mnist"), ValueError, "name='mnist'"),
        (lambda: load_dataset("digits", split="training"), ValueError, "split='training'"),
        (lambda: load_dataset("spoken_digits", language="xx"), ValueError, "language='xx'"),
        (lambda: load_dataset("spoken_digits", language=3), TypeError, "language=3"),
        (lambda: load_dataset("spoken_digits", snr_db="loud"), TypeError, "snr_db='loud'"),
        (lambda: load_dataset("av_digits", snr_db=[1, 2, 3]), TypeError, "snr_db="),
        (lambda: load_dataset("spoken_digits", snr_db=float("nan")), ValueError, "snr_db=nan"),
        (lambda: load_dataset("spoken_digits", noise="rain"), ValueError, "noise='rain'"),
        (lambda: load_dataset("spoken_digits", speed=0.7), ValueError, "speed=0.7"),
        (lambda: load_dataset("spoken_digits", reverb=-1), ValueError, "reverb=-1"),
        (lambda: load_dataset("av_digits", occlusion=1.5), ValueError, "occlusion=1.5"),
        (lambda: load_dataset("av_digits", image_noise="x"), TypeError, "image_noise='x'"),
        (lambda: load_dataset("digits", snr_db=3), TypeError, "snr_db"),
        (lambda: load_dataset("digits", seed="0"), TypeError, "seed='0'"),
        (lambda: load_dataset("digits", seed=-1), ValueError, "seed=-1 should be an int >= 0"),
        (lambda: load_dataset("printed_digits", n=-1), ValueError, "n=-1"),
        (lambda: load_dataset("printed_digits", fonts=("Arial.ttf",)), ValueError, "fonts="),
        (lambda: playback_clips(digit=11), ValueError, "digit=11"),
    ],
)
def test_errors_name_argument_and_value(call, error, words):
    with pytest.raises(error, match=words.replace("[", r"\[").replace("(", r"\(")):
        call()


def test_dataset_refuses_bad_labels_and_mismatched_counts():
    x = np.zeros((3, 8, 8, 1), np.float32)
    with pytest.raises(ValueError, match=r"y holds labels \[12\]; expected class indices 0\.\.9"):
        Dataset("digits", "train", {"image": x}, np.array([0, 1, 12]))
    with pytest.raises(ValueError, match="same sample count"):
        Dataset("av_digits", "train", {"image": x, "audio": np.zeros((2, 32, 40, 1))},
                np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="split='dev'"):
        Dataset("digits", "dev", {"image": x}, np.array([0, 1, 2]))
    d = Dataset("digits", "train", {"image": x}, np.array([0, 1, 2]))
    assert d.n == 3 and d.modalities == ("image",)


def test_corrupt_or_truncated_npz_names_the_file(tmp_path):
    good = tmp_path / "good.npz"
    np.savez_compressed(good, a=np.arange(1000))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:200])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    for path in (truncated, garbage):
        with pytest.raises(ValueError, match=path.name):
            load_npz(path, ["a"], "rebuild it")
    with pytest.raises(ValueError, match="lacks the arrays"):
        load_npz(good, ["b"], "rebuild it")


# ---------------------------------------------------------------- avmnist with tiny fixtures


def test_avmnist_from_local_copies(avmnist_dir):
    sizes = {}
    for split in SPLITS:
        d = load_dataset("avmnist", split=split, data_dir=avmnist_dir, seed=1)
        sizes[split] = d.n
        assert d.x["image"].shape == (d.n, 28, 28, 1) and d.x["audio"].shape[1:] == (32, 40, 1)
        assert 0 <= d.x["image"].min() and d.x["image"].max() <= 1
        index = np.array([int(f.split("_")[2][:-4]) for f in d.meta["file"]])
        assert all(av.fsdd_split_of(i) == split for i in index)
        assert np.array_equal(np.array([int(f[0]) for f in d.meta["file"]]), d.y)
    assert sizes == {"train": 110, "val": 10, "test": 30}


def test_avmnist_reduced_images_lose_energy(avmnist_dir):
    clean = load_dataset("avmnist", split="test", data_dir=avmnist_dir, reduced=False)
    reduced = load_dataset("avmnist", split="test", data_dir=avmnist_dir)
    mnist = np.load(avmnist_dir / "mnist.npz")
    assert np.allclose(clean.x["image"][..., 0], mnist["x_test"] / 255)
    assert reduced.x["image"].std() < clean.x["image"].std()
    small = load_dataset("avmnist", split="train", data_dir=avmnist_dir, n=20, snr_db=0)
    assert small.n == 20


def test_avmnist_resamples_other_rates_and_refuses_low_ones(avmnist_dir):
    recordings = av.find_recordings(avmnist_dir / "fsdd")
    stereo = np.repeat(tone(3, 0, 16000), 2)
    write_wav(recordings / "3_cy_0.wav", stereo, rate=16000, channels=2)
    av._fsdd.cache_clear()
    clips, digits, meta = av.fsdd_clips(recordings, "test")
    (at,) = np.flatnonzero(meta["speaker"] == "cy")
    assert digits[at] == 3 and abs(len(clips[at]) - len(tone(3, 0))) < 800
    reference = clips[int(np.flatnonzero((meta["speaker"] == "ana") & (digits == 3))[0])]
    assert np.corrcoef(np.abs(np.fft.rfft(clips[at], 4096)),
                       np.abs(np.fft.rfft(reference, 4096)))[0, 1] > 0.9
    write_wav(recordings / "4_cy_0.wav", tone(4, 0, 4000), rate=4000)
    av._fsdd.cache_clear()
    with pytest.raises(ValueError, match="4000 Hz"):
        load_dataset("avmnist", split="test", data_dir=avmnist_dir)
    av._fsdd.cache_clear()


def test_avmnist_errors(avmnist_dir, tmp_path_factory):
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(ValueError, match="lacks \\['mnist.npz', 'fsdd'\\]"):
        load_dataset("avmnist", data_dir=empty)
    with pytest.raises(ValueError, match="is not a folder"):
        load_dataset("avmnist", data_dir=empty / "nowhere")
    bad = tmp_path_factory.mktemp("bad")
    (bad / "fsdd").mkdir()
    np.savez(bad / "mnist.npz", x_train=np.zeros((12, 28, 28), np.uint8),
             y_train=np.full(12, 11, np.uint8), x_test=np.zeros((2, 28, 28), np.uint8),
             y_test=np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="recordings"):
        load_dataset("avmnist", data_dir=bad)
    (bad / "fsdd" / "recordings").symlink_to(av.find_recordings(avmnist_dir / "fsdd"))
    with pytest.raises(ValueError, match="labels outside 0-9"):
        load_dataset("avmnist", data_dir=bad)
    np.savez(bad / "mnist.npz", x_train=np.zeros((12, 28, 28), np.uint8),
             y_train=np.zeros(11, np.uint8), x_test=np.zeros((2, 28, 28), np.uint8),
             y_test=np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="same sample count"):
        load_dataset("avmnist", data_dir=bad)
    (bad / "mnist.npz").write_bytes((avmnist_dir / "mnist.npz").read_bytes()[:500])
    with pytest.raises(ValueError, match="mnist.npz is truncated or corrupt"):
        load_dataset("avmnist", data_dir=bad)
    with pytest.raises(ValueError, match="n=0"):
        load_dataset("avmnist", data_dir=avmnist_dir, n=0)


def test_waveform_features_match_shipped_features():
    from mmlearn_helpers.data import shipped, waveform_features

    d = load_dataset("spoken_digits", split="test")
    clips = [shipped()["clips"][i] for i in np.flatnonzero(
        np.isin(shipped()["speaker_name"][shipped()["speaker"]], d.meta["speaker"][:20]))][:20]
    assert np.allclose(waveform_features(clips), d.x["audio"][:20], atol=1e-3)
    upsampled = [np.repeat(c, 2) for c in clips[:2]]  # 16 kHz versions of the same clips
    assert waveform_features(upsampled, rate=16000).shape == (2, N_MELS, N_FRAMES, 1)
    with pytest.raises(ValueError, match="waves has shape"):
        waveform_features(np.zeros(100))
