"""Build data/spoken_digits.npz: the digits 0-9 spoken by espeak-ng voices, and data/manifest.json.

Run from the repository root: `python data/build_spoken_digits.py` (or `make data`). Needs the
espeak-ng command (Debian/Ubuntu: `apt-get install espeak-ng`); learners only load the result.
The build is deterministic: fixed voice lists, a fixed random order, no timestamps in the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.io import wavfile

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from mmlearn_helpers.data import audio, spoken  # noqa: E402

OUT = ROOT / "spoken_digits.npz"
MANIFEST = ROOT / "manifest.json"
ORDER_SEED = 20240601  # fixes the order in which voice combinations are tried
SPLIT_SEED, SPLIT_TRIES = 20261204, 2000  # the seeded search for alike splits (assign_splits)

# language -> espeak-ng voices (accents) that speak it; the text "0".."9" is read in that language
LANGUAGES = {
    "en": ["en-us", "en-us-nyc", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-029"],
    "es": ["es", "es-419"],
    "fr": ["fr-fr", "fr-be", "fr-ch"],
    "de": ["de"],
    "it": ["it"],
    "pt": ["pt", "pt-br"],
    "nl": ["nl"],
    "pl": ["pl"],
}
# speakers synthesized per variant pool: (train, val, test); pools keep the synthesis order
SPEAKERS = {"en": (48, 12, 12)} | {lang: (10, 3, 3) for lang in LANGUAGES if lang != "en"}
# speakers per split once synthesized, in the order of spoken.SPEAKER_SPLITS (source, train, val,
# test): English voices are divided between the speech source (pretraining only) and the target
# splits, so no target split shares a recording with the source's training data
SPLIT_SPEAKERS = {"en": (24, 24, 12, 12)} | {lang: (0, 10, 3, 3) for lang in LANGUAGES
                                             if lang != "en"}
# espeak-ng voice variants that sound like a person (robots, whisper-only and effects left out);
# MBROLA voices need extra packages and are not used
VARIANTS = (
    "m1 m2 m3 m4 m5 m6 m7 m8 f1 f2 f3 f4 f5 klatt klatt2 klatt3 klatt4 klatt5 klatt6 adam alex "
    "andy annie aunty belinda benjamin caleb david ed edward gene grandma grandpa gustave henrique "
    "hugo iven jacky john lee linda marco mario max michael michel miguel mike norbert pablo paul "
    "pedro quincy rob robert sandro shelby steph travis victor zac croak"
).split()
SPEEDS = (130, 150, 170, 190, 210)  # words per minute (espeak-ng default 175)
PITCHES = (20, 35, 50, 65, 80)  # espeak-ng pitch 0-99 (default 50)
POOLS = ("train", "val", "test")


def synth(voice: str, text: str, speed: int = 175, pitch: int = 50) -> np.ndarray:
    """One espeak-ng utterance -> prepared 8 kHz float32 waveform."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", f.name, text]
        subprocess.run(cmd, check=True, capture_output=True)
        rate, x = wavfile.read(f.name)
    return audio.prepare_waveform(x, rate, name=f"espeak-ng {voice} {text!r}")


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


def distinct_variants() -> list[str]:
    """Variants whose audio differs (several only set a pitch, which -p overrides)."""
    seen, keep = set(), []
    for v in VARIANTS:
        x = to_int16(synth(f"en-us+{v}", "0 1 2 3 4 5 6 7 8 9"))
        h = hashlib.sha256(x.tobytes()).hexdigest()
        if h not in seen:
            seen.add(h)
            keep.append(v)
    return keep


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez_compressed, but byte-reproducible (fixed timestamps)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, buf.getvalue(), compresslevel=9)


def _imbalance(kinds: list[str], splits: list[str]) -> float:
    """How far the splits' voice-kind shares are from the overall shares (sum of differences)."""
    total = Counter(kinds)
    out = 0.0
    for split in set(splits):
        mine = Counter(k for k, s in zip(kinds, splits, strict=True) if s == split)
        size = sum(mine.values())
        out += sum(abs(mine[k] / size - total[k] / len(kinds)) for k in total)
    return out


def assign_splits(speakers: dict[str, list]) -> list[str]:
    """Each speaker's split: per language the counts of SPLIT_SPEAKERS, voice kinds alike.

    For each language in turn, SPLIT_TRIES seeded random splits with that language's counts are
    tried, and the one that leaves the splits' mixes of voice kinds (female / male / klatt /
    unmarked) most alike is kept: over English, and over all other languages together.
    """
    rng = np.random.default_rng(SPLIT_SEED)
    kinds = [spoken.voice_kind(v) for v in speakers["variant"]]
    split = [""] * len(kinds)
    for lang in LANGUAGES:
        mine = [i for i, la in enumerate(speakers["language"]) if la == lang]
        group = [i for i, la in enumerate(speakers["language"])
                 if (la == "en") == (lang == "en") and split[i]] + mine
        base = [s for s, q in zip(spoken.SPEAKER_SPLITS, SPLIT_SPEAKERS[lang], strict=True)
                for _ in range(q)]
        if len(base) != len(mine):
            raise RuntimeError(f"{lang}: {len(mine)} speakers, the splits need {len(base)}")

        def score(candidate: np.ndarray, mine: list = mine, group: list = group) -> float:
            chosen = dict(zip(mine, candidate, strict=True))
            return _imbalance([kinds[i] for i in group],
                              [chosen.get(i, split[i]) for i in group])

        best = min((rng.permutation(base) for _ in range(SPLIT_TRIES)), key=score)
        for i, s in zip(mine, best, strict=True):
            split[i] = str(s)
    return split


def build() -> dict:
    """Synthesize, deduplicate, split (stratified by voice), write the arrays; return a summary."""
    start = time.time()
    version = subprocess.run(
        ["espeak-ng", "--version"], check=True, capture_output=True, text=True
    ).stdout.split("Data at:")[0].strip()  # the data path differs between machines
    rng = np.random.default_rng(ORDER_SEED)
    variants = distinct_variants()
    dropped = sorted(set(VARIANTS) - set(variants))
    order = rng.permutation(len(variants))
    n_val = n_test = len(variants) // 5
    split_variants = {
        "test": [variants[i] for i in order[:n_test]],
        "val": [variants[i] for i in order[n_test : n_test + n_val]],
        "train": [variants[i] for i in order[n_test + n_val :]],
    }
    seen_clips: set[str] = set()
    waves, digits, speaker_of = [], [], []
    speakers = {k: [] for k in ("name", "language", "voice", "variant", "speed", "pitch", "pool")}
    skipped = 0
    for lang, accents in LANGUAGES.items():
        for split, target in zip(POOLS, SPEAKERS[lang], strict=True):
            combos = [
                (a, v, s, p)
                for a in accents
                for v in split_variants[split]
                for s in SPEEDS
                for p in PITCHES
            ]
            picked = 0
            for i in rng.permutation(len(combos)):
                if picked == target:
                    break
                accent, variant, speed, pitch = combos[i]
                clips = [to_int16(synth(f"{accent}+{variant}", str(d), speed, pitch))
                         for d in range(10)]
                hashes = {hashlib.sha256(c.tobytes()).hexdigest() for c in clips}
                if len(hashes) < 10 or hashes & seen_clips:
                    skipped += 1
                    continue
                seen_clips |= hashes
                sid = len(speakers["name"])
                for key, value in zip(
                    speakers,
                    (f"{accent}+{variant}/s{speed}/p{pitch}", lang, accent, variant, speed, pitch,
                     split), strict=True,
                ):
                    speakers[key].append(value)
                waves += clips
                digits += list(range(10))
                speaker_of += [sid] * 10
                picked += 1
            if picked < target:
                raise RuntimeError(f"only {picked} distinct {lang} {split} speakers, need {target}")
    lengths = np.array([len(w) for w in waves])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    speaker_of = np.array(speaker_of, dtype=np.int16)
    speakers["split"] = assign_splits(speakers)
    # standardization statistics: the clean voices of the speech source
    source_clips = [
        w.astype(np.float32) / 32767
        for w, s in zip(waves, speaker_of, strict=True) if speakers["split"][s] == "source"
    ]
    feats = audio.log_mel(np.stack([audio.fit_window(w) for w in source_clips]))
    arrays = {
        "waves": np.concatenate(waves),
        "offsets": offsets,
        "digit": np.array(digits, dtype=np.int8),
        "speaker": speaker_of,
        "speaker_name": np.array(speakers["name"]),
        "speaker_language": np.array(speakers["language"]),
        "speaker_voice": np.array(speakers["voice"]),
        "speaker_variant": np.array(speakers["variant"]),
        "speaker_speed": np.array(speakers["speed"], dtype=np.int16),
        "speaker_pitch": np.array(speakers["pitch"], dtype=np.int16),
        "speaker_split": np.array(speakers["split"]),
        "mel_mean": feats.mean(axis=(0, 2)).astype(np.float32),
        "mel_std": feats.std(axis=(0, 2)).astype(np.float32),
        "sample_rate": np.array(audio.SAMPLE_RATE),
        "espeak_version": np.array(version),
    }
    write_npz(OUT, arrays)
    counts = {
        lang: {
            split: sum(
                1 for la, sp in zip(speakers["language"], speakers["split"], strict=True)
                if la == lang and sp == split
            )
            for split in spoken.SPEAKER_SPLITS
        }
        for lang in LANGUAGES
    }
    kinds = {
        split: dict(sorted(Counter(
            spoken.voice_kind(v) for v, sp, la in
            zip(speakers["variant"], speakers["split"], speakers["language"], strict=True)
            if sp == split and la == "en").items()))
        for split in spoken.SPEAKER_SPLITS
    }
    summary = {
        "espeak_ng_version": version,
        "clips": len(waves),
        "speakers_per_language_and_split": counts,
        "english_voice_kinds_per_split": kinds,
        "variants_per_synthesis_pool": split_variants,
        "variants_dropped_as_identical_audio": dropped,
        "combinations_skipped_as_duplicates": skipped,
        "seconds_of_audio": round(float(lengths.sum()) / audio.SAMPLE_RATE, 1),
        "build_seconds": round(time.time() - start, 1),
    }
    return summary


def write_manifest(summary: dict) -> None:
    """Update the manifest: this build's summary and the sha256 and size of its file.

    The other builds' entries (the text digits, the chars2vec weights) are kept as they are.
    """
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    manifest.setdefault("files", {})[OUT.name] = {
        "sha256": hashlib.sha256(OUT.read_bytes()).hexdigest(), "bytes": OUT.stat().st_size}
    manifest["files"] = dict(sorted(manifest["files"].items()))
    manifest["build"] = {k: v for k, v in summary.items() if k != "build_seconds"}
    MANIFEST.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    result = build()
    write_manifest(result)
    print(json.dumps(result, indent=2))
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB) and {MANIFEST}")
