"""Speed and memory of the operations the notebooks lean on: `make bench` (numbers, not tests).

    python -m mmlearn_helpers.bench               # helpers only, about a minute
    python -m mmlearn_helpers.bench --notebooks   # also every notebook alone, fast profile: its
                                                  # seconds, where they went, its peak memory
    python -m mmlearn_helpers.bench --dataset avmnist --data-dir DIR   # + the real-data benchmark
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _timed(fn, repeat: int = 3, warm: bool = True) -> float:
    """Best wall-clock seconds of `repeat` calls of fn, after one warm-up call if `warm`."""
    if warm:
        fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _import_seconds() -> float:
    """Seconds for a fresh interpreter to import the helpers and Keras (TensorFlow included)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import mmlearn_helpers, keras"], check=True)
    return time.perf_counter() - start


def _own_peak_mib() -> float:
    """This process's own peak RSS: VmHWM on Linux (ru_maxrss of a spawned child also counts
    its parent's size at fork time), ru_maxrss elsewhere."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _avmnist_benchmark(data_dir: str | None, profile: str) -> tuple[dict, float]:
    """Notebook 04's real-data benchmark (its settings), and this process's peak RSS in MiB."""
    from . import fusion_benchmark
    from .data import load_dataset
    from .settings import settings

    s = settings("04_early_vs_late_fusion", "avmnist", profile, quiet=True)
    data = {split: load_dataset("avmnist", split=split, data_dir=data_dir)
            for split in ("train", "val", "test")}
    rows = fusion_benchmark.late_fusion_benchmark(
        data, seeds=range(s["bench_seeds"]), epochs=s["bench_epochs"], lr=s["lr"],
        batch_size=s["batch_size"], pool=s["pool"], verbose=False)
    summary = fusion_benchmark.summary(rows) | {f"n_{k}": d.n for k, d in data.items()}
    return summary, _own_peak_mib()


def avmnist_measurements(data_dir: str | None, profile: str = "fast") -> dict:
    """The real-data benchmark in a fresh process (so its peak memory is its own), beside
    the MultiBench figures quoted in `fusion_benchmark.MULTIBENCH`."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from .fusion_benchmark import MULTIBENCH

    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        b, rss = pool.submit(_avmnist_benchmark, data_dir, profile).result()
    tag = f"avmnist {b['n_train']}/{b['n_val']}/{b['n_test']} pairs, {b['seeds']} seeds"
    return {
        f"{tag}: best fusion test accuracy (rule chosen on val)": (b["fusion"], ""),
        f"{tag}: best fusion, std over seeds": (b["fusion_std"], ""),
        f"{tag}: audio only test accuracy": (b["audio_only"], ""),
        f"{tag}: image only test accuracy": (b["image_only"], ""),
        f"{tag}: training seconds per seed (both experts)": (b["train_seconds"], "s"),
        f"{tag}: peak resident memory of the benchmark process": (rss, "MiB"),
        "MultiBench simple late fusion (quoted): test accuracy": (MULTIBENCH["fusion"], ""),
        "MultiBench simple late fusion (quoted): audio only": (MULTIBENCH["audio_only"], ""),
        "MultiBench simple late fusion (quoted): image only": (MULTIBENCH["image_only"], ""),
        "MultiBench simple late fusion (quoted): training seconds": (
            MULTIBENCH["train_seconds"], "s"),
    }


def _descendants(pid: int) -> list[int]:
    """`pid` and every process below it, from Linux's /proc (just `pid` elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        out.append(todo.pop())
        todo += children.get(out[-1], [])
    return out


def _peak_mib(pids: list[int]) -> float:
    """The largest peak resident memory (VmHWM) of these processes, in MiB (0 without /proc)."""
    peaks = []
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        peaks += [int(line.split()[1]) / 1024 for line in status.splitlines()
                  if line.startswith("VmHWM:")]
    return max(peaks, default=0.0)


def _run_alone(stem: str, out_dir: str) -> tuple[float, float, bool]:
    """Run one notebook in its own runner process: (seconds, peak MiB of its largest process, ok).

    The peak is each process's own high-water mark (VmHWM), read every half second from the
    runner and its kernel while they run: the kernel's, as a rule.
    """
    start, peak = time.perf_counter(), 0.0
    proc = subprocess.Popen([sys.executable, "-m", "mmlearn_helpers.run", stem, "--out", out_dir],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None:
        peak = max(peak, _peak_mib(_descendants(proc.pid)))
        time.sleep(0.5)
    return time.perf_counter() - start, peak or float("nan"), proc.returncode == 0


def cell_seconds(executed: Path) -> list[tuple[float, str]]:
    """(seconds, first line) of every code cell of a papermill-executed notebook."""
    import nbformat

    cells = nbformat.read(executed, as_version=4).cells
    return [(float(c.metadata.get("papermill", {}).get("duration") or 0.0),
             (c.source.strip().splitlines() or [""])[0][:60])
            for c in cells if c.cell_type == "code"]


def notebook_measurements(stem: str) -> dict:
    """One notebook, fast profile, alone: total seconds, where they went, peak memory."""
    with tempfile.TemporaryDirectory() as tmp:
        seconds, peak_mib, ok = _run_alone(stem, tmp)
        cells = cell_seconds(Path(tmp) / f"{stem}.ipynb")
    in_cells = sum(secs for secs, _ in cells)
    imports = sum(secs for secs, line in cells if line.startswith(("import ", "from ")))
    slowest = sorted(cells, reverse=True)[:2]
    tag = f"notebook {stem} (fast{'' if ok else ', FAILED'})"
    out = {tag: (seconds, "s"),
           f"  {stem}: process and kernel start, papermill": (seconds - in_cells, "s"),
           f"  {stem}: cells that start with imports": (imports, "s")}
    for secs, line in slowest:
        out[f"  {stem}: cell `{line}`"] = (secs, "s")
    out[f"  {stem}: peak resident memory (kernel)"] = (peak_mib, "MiB")
    return out


def measure(notebooks: bool = False) -> dict:
    """Run every measurement; return {name: (value, unit)}."""
    from .data import load_dataset
    from .data.images import render_printed
    from .models import classifier, conv_encoder
    from .training import fit

    out = {"import mmlearn_helpers + keras": (_import_seconds(), "s")}
    n = 5000
    out["printed digits generated"] = (n / _timed(lambda: render_printed(n, seed=0)), "images/s")
    for name, opts in [("digits", {}), ("spoken_digits", {"language": "en"}),
                       ("av_digits", {"image_noise": 0.9, "snr_db": -10})]:
        def load(name=name, opts=opts):
            return load_dataset(name, split="train", seed=1, **opts)

        secs = _timed(load, repeat=1, warm=False)  # cold: first load in this process
        out[f"load_dataset({name!r}, train), cold"] = (secs, "s")
    audio = load_dataset("spoken_digits", split="train")
    x, y = audio.x["audio"], audio.y
    model = classifier(conv_encoder(x.shape[1:]))
    fit(model, x[:64], y[:64], epochs=1, lr=1e-3, seed=0)  # trace once
    secs = _timed(lambda: fit(model, x, y, epochs=1, lr=1e-3, seed=0), repeat=1)
    out[f"audio CNN 16/32/32, one epoch of {len(y)} clips"] = (secs, "s")
    out["audio CNN trainable parameters"] = (float(model.count_params()), "")
    if notebooks:
        from .run import find_notebooks

        total = 0.0
        for path in find_notebooks():
            found = notebook_measurements(path.stem)
            total += next(iter(found.values()))[0]
            out |= found
        out["notebooks, fast profile, one after another"] = (total, "s")
    peak_kb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    out["peak resident memory"] = (peak_kb / 1024, "MiB")
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the measurements as a table and write them to runs/bench.json."""
    parser = argparse.ArgumentParser(prog="python -m mmlearn_helpers.bench", description=__doc__)
    parser.add_argument("--notebooks", action="store_true", help="also time every notebook")
    parser.add_argument("--dataset", choices=("av_digits", "avmnist"), default="av_digits",
                        help="avmnist: also run notebook 04's real-data benchmark")
    parser.add_argument("--data-dir", default=None,
                        help="folder with mnist.npz and fsdd/ (default: the download cache)")
    parser.add_argument("--profile", choices=("fast", "full"), default="fast")
    parser.add_argument("--out", default="runs/bench.json")
    args = parser.parse_args(argv)
    results = measure(args.notebooks)
    if args.dataset == "avmnist":
        results |= avmnist_measurements(args.data_dir, args.profile)
    width = max(map(len, results))
    for name, (value, unit) in results.items():
        digits = 0 if float(value).is_integer() else 2 if unit else 4
        print(f"{name:<{width}}  {value:>10.{digits}f} {unit}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({k: {"value": v, "unit": u}
                                          for k, (v, u) in results.items()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
