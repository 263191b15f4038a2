"""Audio pipeline: waveforms at 8 kHz -> fixed window -> standardized log-mel, plus degradations.

The same functions serve the shipped espeak-ng digits and the Free Spoken Digit Dataset
recordings, so a model trained on one can be applied to the other.
"""

from __future__ import annotations

import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

SAMPLE_RATE = 8000  # Hz, the rate of the Free Spoken Digit Dataset
N_FFT = 256  # 32 ms analysis window
HOP = 160  # 20 ms hop
N_MELS = 32
N_FRAMES = 40
CLIP_SAMPLES = (N_FRAMES - 1) * HOP + N_FFT  # 6,496 samples = 0.81 s
PEAK_LEVEL = 0.5  # clean clips are peak-normalized to -6 dBFS
LOG_FLOOR = 1e-3  # power floor of the log-mel, about 60 dB below a full-level tone
F_MIN, F_MAX = 60.0, SAMPLE_RATE / 2
NOISE_TYPES = ("white", "pink", "babble")


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)


def mel_filterbank() -> np.ndarray:
    """Triangular HTK-mel filters, shape (N_MELS, N_FFT // 2 + 1)."""
    bins = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(F_MIN), _hz_to_mel(F_MAX), N_MELS + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise = (bins[None, :] - lo) / (mid - lo)
    fall = (hi - bins[None, :]) / (hi - mid)
    return np.clip(np.minimum(rise, fall), 0.0, None).astype(np.float32)


_MEL = mel_filterbank()
_WINDOW = np.hanning(N_FFT + 1)[:-1].astype(np.float32)


def power_spectrogram(clips: np.ndarray) -> np.ndarray:
    """Power STFT of fixed-length clips (n, CLIP_SAMPLES) -> (n, N_FRAMES, N_FFT // 2 + 1)."""
    clips = np.asarray(clips, dtype=np.float32)
    if clips.ndim != 2 or clips.shape[1] != CLIP_SAMPLES:
        raise ValueError(
            f"clips has shape {clips.shape}; expected (n, {CLIP_SAMPLES}) - use fit_window first"
        )
    idx = np.arange(N_FRAMES)[:, None] * HOP + np.arange(N_FFT)[None, :]
    frames = clips[:, idx] * _WINDOW
    spec = np.fft.rfft(frames, axis=-1)
    return (spec.real**2 + spec.imag**2).astype(np.float32)


def warp_frequencies(power: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Scale the frequency axis of power spectra by per-clip factors (VTLP-style pitch shift)."""
    n_bins = power.shape[-1]
    src = np.arange(n_bins)[None, :] / np.asarray(factors, dtype=np.float64)[:, None]
    lo = np.clip(np.floor(src).astype(np.int64), 0, n_bins - 1)
    hi = np.clip(lo + 1, 0, n_bins - 1)
    w = (src - lo)[:, None, :].astype(np.float32)
    lo_vals = np.take_along_axis(power, np.broadcast_to(lo[:, None, :], power.shape), axis=-1)
    hi_vals = np.take_along_axis(power, np.broadcast_to(hi[:, None, :], power.shape), axis=-1)
    out = lo_vals * (1 - w) + hi_vals * w
    return np.where((src > n_bins - 1)[:, None, :], 0.0, out).astype(np.float32)


LOG_MEL_CHUNK = 256  # clips per STFT batch: bounds the spectra's memory (complex128, ~1 MB a clip)


def log_mel(clips: np.ndarray, pitch_factors: np.ndarray | None = None) -> np.ndarray:
    """Unstandardized log-mel features (n, N_MELS, N_FRAMES) of fixed-length clips.

    Computed LOG_MEL_CHUNK clips at a time (the same numbers as all at once), so thousands of
    clips need tens of MB of spectra, not gigabytes.
    """
    out = np.empty((len(clips), N_MELS, N_FRAMES), dtype=np.float32)
    for start in range(0, len(clips), LOG_MEL_CHUNK):
        part = slice(start, start + LOG_MEL_CHUNK)
        power = power_spectrogram(clips[part])
        if pitch_factors is not None:
            power = warp_frequencies(power, np.asarray(pitch_factors)[part])
        mel = power @ _MEL.T  # (n, frames, mels)
        out[part] = np.log(mel + LOG_FLOOR).transpose(0, 2, 1)
    return out


def standardize(features: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Per-mel-band standardization; returns (n, N_MELS, N_FRAMES, 1) float32."""
    out = (features - mean[None, :, None]) / std[None, :, None]
    return out[..., None].astype(np.float32)


def trim(x: np.ndarray, threshold_db: float = -35.0, margin: int = 160) -> np.ndarray:
    """Cut leading and trailing silence: 10 ms frames quieter than threshold_db re the loudest."""
    frame = SAMPLE_RATE // 100
    n = len(x) // frame
    if n == 0:
        return x
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    active = np.flatnonzero(20 * np.log10(rms / rms.max()) > threshold_db)
    start = max(active[0] * frame - margin, 0)
    stop = min((active[-1] + 1) * frame + margin, len(x))
    return x[start:stop]


def prepare_waveform(x: np.ndarray, rate: int, name: str = "waveform") -> np.ndarray:
    """Any-rate audio -> 8 kHz mono float32, trimmed, peak-normalized to PEAK_LEVEL.

    Multi-channel input is downmixed by averaging; rates above 8 kHz are resampled; rates below
    8 kHz are refused (the missing bandwidth cannot be recovered).
    """
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name} has shape {x.shape}; expected a non-empty mono or stereo signal")
    if rate < SAMPLE_RATE:
        raise ValueError(
            f"{name} has a sample rate of {rate} Hz; expected at least {SAMPLE_RATE} Hz "
            "(higher rates are resampled, lower ones are refused)"
        )
    if rate != SAMPLE_RATE:
        g = np.gcd(int(rate), SAMPLE_RATE)
        x = resample_poly(x, SAMPLE_RATE // g, int(rate) // g).astype(np.float32)
    x = trim(x)
    peak = float(np.abs(x).max())
    if peak == 0.0:
        raise ValueError(f"{name} is silent; expected a recording of a spoken digit")
    return (x * (PEAK_LEVEL / peak)).astype(np.float32)


def fit_window(x: np.ndarray) -> np.ndarray:
    """Center a waveform in a CLIP_SAMPLES window (zero-pad, or center-crop when longer)."""
    out = np.zeros(CLIP_SAMPLES, dtype=np.float32)
    if len(x) >= CLIP_SAMPLES:
        start = (len(x) - CLIP_SAMPLES) // 2
        return np.asarray(x[start : start + CLIP_SAMPLES], dtype=np.float32)
    start = (CLIP_SAMPLES - len(x)) // 2
    out[start : start + len(x)] = x
    return out


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a PCM wav file -> (samples (n,) or (n, channels), rate); names the file on failure."""
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as err:
        raise ValueError(f"{path} is not a readable PCM wav file ({err}); re-download it") from err
    dtypes = {1: np.uint8, 2: np.int16, 4: np.int32}
    if width not in dtypes:
        raise ValueError(f"{path} has {8 * width}-bit samples; expected 8, 16 or 32-bit PCM")
    x = np.frombuffer(raw, dtype=dtypes[width])
    if width == 1:
        x = (x.astype(np.int16) - 128).astype(np.int8)
    x = x[: len(x) - len(x) % channels].reshape(-1, channels)
    return (x[:, 0] if channels == 1 else x), rate


def _colored_noise(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    white = rng.standard_normal((n, CLIP_SAMPLES)).astype(np.float32)
    if kind == "white":
        return white
    spec = np.fft.rfft(white, axis=1)
    freqs = np.fft.rfftfreq(CLIP_SAMPLES)
    freqs[0] = freqs[1]
    return np.fft.irfft(spec / np.sqrt(freqs), n=CLIP_SAMPLES, axis=1).astype(np.float32)


def _babble(rng: np.random.Generator, pool: np.ndarray, n: int, talkers: int = 5) -> np.ndarray:
    picks = rng.integers(0, len(pool), size=(n, talkers))
    shifts = rng.integers(0, CLIP_SAMPLES, size=(n, talkers))
    out = np.zeros((n, CLIP_SAMPLES), dtype=np.float32)
    for t in range(talkers):
        pairs = zip(picks[:, t], shifts[:, t], strict=True)
        out += np.stack([np.roll(pool[p], s) for p, s in pairs])
    return out


def _speech_power(clips: np.ndarray) -> np.ndarray:
    """Mean power of the active part of each clip (samples above -40 dB re its peak)."""
    mag = np.abs(clips)
    active = mag > 0.01 * mag.max(axis=1, keepdims=True)
    return (clips**2 * active).sum(axis=1) / np.maximum(active.sum(axis=1), 1)


def _range(value: float | Sequence[float], name: str) -> tuple[float, float]:
    """A number v means the range [v, v]; a pair (low, high) is a range; checks both."""
    if isinstance(value, bool) or not isinstance(value, (int, float, tuple, list)):
        raise TypeError(f"{name}={value!r} is not a number; expected a float or a (low, high) pair")
    pair = (value, value) if isinstance(value, (int, float)) else tuple(value)
    if len(pair) != 2 or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair
    ):
        raise TypeError(f"{name}={value!r} is not a number; expected a float or a (low, high) pair")
    if not all(np.isfinite(pair)) or pair[0] > pair[1]:
        raise ValueError(f"{name}={value!r}; expected finite numbers with low <= high")
    return float(pair[0]), float(pair[1])


def _nonneg(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}={value!r} is not a number; expected a float >= 0")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name}={value!r}; expected a finite float >= 0")
    return float(value)


def check_degradations(
    snr_db: float | Sequence[float] | None = None,
    noise: str = "white",
    speed: float = 0.0,
    pitch: float = 0.0,
    reverb: float = 0.0,
    gain_db: float = 0.0,
) -> dict:
    """Validate audio degradation arguments; returns them normalized."""
    if noise not in NOISE_TYPES:
        raise ValueError(f"noise={noise!r} is not a noise type; expected one of {NOISE_TYPES}")
    snr = None if snr_db is None else _range(snr_db, "snr_db")
    speed = _nonneg(speed, "speed")
    if speed >= 0.5:
        raise ValueError(f"speed={speed!r}; expected a relative change below 0.5 (e.g. 0.1)")
    return {
        "snr_db": snr,
        "noise": noise,
        "speed": speed,
        "pitch": _nonneg(pitch, "pitch"),
        "reverb": _nonneg(reverb, "reverb"),
        "gain_db": _nonneg(gain_db, "gain_db"),
    }


def _change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    n_out = max(int(round(len(x) / factor)), 1)
    return np.interp(np.arange(n_out) * factor, np.arange(len(x)), x).astype(np.float32)


def _room_response(rng: np.random.Generator, rt60: float) -> np.ndarray:
    n = max(int(rt60 * SAMPLE_RATE), 2)
    t = np.arange(n) / SAMPLE_RATE
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60) * 0.3
    ir[0] = 1.0
    return (ir / np.sqrt(np.sum(ir**2))).astype(np.float32)


def degrade(
    waves: Sequence[np.ndarray],
    seed: int = 0,
    babble_pool: np.ndarray | None = None,
    **options,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply seeded degradations to clean clips -> (clips (n, CLIP_SAMPLES), pitch factors).

    Options (all off by default): snr_db (number or (low, high) range, additive noise at that
    signal-to-noise ratio re the speech), noise ("white", "pink" or "babble" - five other clips),
    speed (max relative tempo+pitch change by resampling, e.g. 0.1 -> factor in [0.9, 1.1]),
    pitch (max shift in semitones, applied as a frequency warp of the spectrum, like VTLP),
    reverb (RT60 in seconds of a synthetic exponential room response), gain_db (max random
    level change in dB; the result is clipped to [-1, 1] like a real recording).
    """
    opts = check_degradations(**options)
    rng = np.random.default_rng(seed)
    n = len(waves)
    if opts["speed"] > 0:
        factors = rng.uniform(1 - opts["speed"], 1 + opts["speed"], size=n)
        waves = [_change_speed(w, f) for w, f in zip(waves, factors, strict=True)]
    clips = np.stack([fit_window(w) for w in waves]) if n else np.zeros((0, CLIP_SAMPLES))
    clips = clips.astype(np.float32)
    if opts["reverb"] > 0:
        irs = [_room_response(rng, opts["reverb"]) for _ in range(n)]
        size = CLIP_SAMPLES + max(len(ir) for ir in irs)
        ir_bank = np.stack([np.pad(ir, (0, size - len(ir))) for ir in irs])
        wet = np.fft.irfft(np.fft.rfft(clips, size) * np.fft.rfft(ir_bank, size), size)
        clips = wet[:, :CLIP_SAMPLES].astype(np.float32)
    if opts["snr_db"] is not None and n:
        snr = rng.uniform(*opts["snr_db"], size=n)
        if opts["noise"] == "babble":
            pool = clips if babble_pool is None else babble_pool
            noise = _babble(rng, pool, n)
        else:
            noise = _colored_noise(rng, n, opts["noise"])
        scale = np.sqrt(_speech_power(clips) / (np.mean(noise**2, axis=1) * 10 ** (snr / 10)))
        clips = clips + noise * scale[:, None].astype(np.float32)
    if opts["gain_db"] > 0:
        gains = 10 ** (rng.uniform(-opts["gain_db"], opts["gain_db"], size=n) / 20)
        clips = np.clip(clips * gains[:, None], -1.0, 1.0).astype(np.float32)
    pitch = None
    if opts["pitch"] > 0:
        pitch = 2 ** (rng.uniform(-opts["pitch"], opts["pitch"], size=n) / 12)
    return clips.astype(np.float32), pitch


def log_mel_features(
    waves: Sequence[np.ndarray],
    mean: np.ndarray,
    std: np.ndarray,
    seed: int = 0,
    babble_pool: np.ndarray | None = None,
    **options,
) -> np.ndarray:
    """Prepared 8 kHz waveforms -> standardized log-mel (n, N_MELS, N_FRAMES, 1) float32.

    `options` are the degradations of `degrade` (noise at an SNR, speed, pitch, reverb, gain).
    """
    clips, pitch = degrade(waves, seed=seed, babble_pool=babble_pool, **options)
    return standardize(log_mel(clips, pitch), mean, std)
