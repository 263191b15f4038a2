"""Run the notebooks headless with papermill and summarise their headline numbers.

    python -m mmlearn_helpers.run                      # every notebook, fast profile
    python -m mmlearn_helpers.run 04 --profile full    # one notebook by number or name
    python -m mmlearn_helpers.run --jobs 2             # two notebooks at a time (two cores)
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from .params import PROFILES, check_profile, check_results_dir
from .results import load_results

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"


def _kernel_manager():
    """A kernel manager that talks to the kernel over local socket files (IPC), not TCP.

    Over TCP, ipykernel prints "Kernel is running over TCP without encryption" once per notebook;
    IPC has nothing to warn about. The sockets get a unique name in the temporary folder (by
    default they would land in the notebook's folder, shared by kernels running side by side);
    the kernel manager deletes them when the kernel stops. Windows has no IPC transport, so it
    keeps Jupyter's default.
    """
    from jupyter_client.manager import AsyncKernelManager

    if os.name == "nt":
        return AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.transport = "ipc"
            self.ip = os.path.join(tempfile.gettempdir(), f"mmlearn-kernel-{uuid.uuid4().hex[:12]}")

    return IPCKernelManager


def find_notebooks(
    names: list[str] | None = None, notebooks_dir: Path = NOTEBOOKS_DIR
) -> list[Path]:
    """Notebooks under `notebooks_dir` in reading order, or those named (by number or stem)."""
    available = sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        if not available:
            raise ValueError(f"no notebooks found under {notebooks_dir}")
        return available
    chosen = []
    for name in names:
        stem = Path(name).name.removesuffix(".ipynb")
        hits = [p for p in available if p.stem == stem or p.stem.split("_")[0] == stem]
        if len(hits) != 1:
            raise ValueError(f"notebook {name!r} does not exist; expected one of "
                             f"{[p.stem for p in available]} (or their numbers)")
        chosen.append(hits[0])
    return chosen


def _failing_cell(nb_path: Path, cell_index: int) -> str:
    """Describe the failing cell of an executed copy as the learner sees it in the original."""
    import nbformat
    from papermill.execute import ERROR_MARKER_TAG

    def tagged(cell, tag):
        return tag in cell.metadata.get("tags", [])

    # papermill's index counts the injected-parameters cell but not its own error-marker cells
    cells = nbformat.read(nb_path, as_version=4).cells
    cells = [c for c in cells if not tagged(c, ERROR_MARKER_TAG)]
    index = cell_index - any(tagged(c, "injected-parameters") for c in cells[:cell_index])
    original = [c for c in cells if not tagged(c, "injected-parameters")]
    code_number = sum(c.cell_type == "code" for c in original[: index + 1])
    first_line = (original[index].source.strip().splitlines() or [""])[0][:70]
    return f"code cell {code_number} (`{first_line}`)"


def run_notebook(path: Path, out_dir: Path, profile: str, extra: dict | None = None,
                 progress: bool = False) -> dict:
    """Execute one notebook into `out_dir`; return {notebook, status, seconds, error}."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    results_dir = out_dir / "results"
    (results_dir / f"{path.stem}.json").unlink(missing_ok=True)  # no stale numbers on failure
    output = out_dir / path.name
    params = {"profile": profile, "results_dir": str(results_dir), **(extra or {})}
    start = time.perf_counter()
    record = {"notebook": path.stem, "status": "ok", "error": None, "output": str(output)}
    try:
        papermill.execute_notebook(str(path), str(output), parameters=params, cwd=str(path.parent),
                                   kernel_name="python3", progress_bar=progress, log_output=False,
                                   kernel_manager_class=_kernel_manager())
    except PapermillExecutionError as exc:
        record["status"] = "failed"
        record["error"] = (f"{_failing_cell(output, exc.cell_index)} raised {exc.ename}: "
                           f"{exc.evalue}")
    except Exception as exc:  # kernel died, timeout, unreadable notebook: still report and go on
        record["status"] = "failed"
        record["error"] = f"{type(exc).__name__}: {exc}"
    record["seconds"] = round(time.perf_counter() - start, 1)
    return record


def _headline(metrics: dict, limit: int = 6) -> str:
    """A short 'key=value' string of a notebook's main numbers (spreads left out)."""
    items = [(k, v) for k, v in metrics.items() if not k.endswith("_std")][:limit]
    return ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in items)


def summarize(records: list[dict], out_dir: Path) -> str:
    """Add saved metrics to the records, write summary.md and summary.json, return the table."""
    saved = load_results(out_dir / "results") if (out_dir / "results").is_dir() else {}
    lines = ["| notebook | status | seconds | headline numbers |", "|---|---|---:|---|"]
    for rec in records:
        rec["metrics"] = saved.get(rec["notebook"], {}).get("metrics", {})
        detail = rec["error"] if rec["status"] != "ok" else _headline(rec["metrics"])
        lines.append(f"| {rec['notebook']} | {rec['status']} | {rec['seconds']:.1f} | {detail} |")
    table = "\n".join(lines) + "\n"
    (out_dir / "summary.md").write_text(table)
    (out_dir / "summary.json").write_text(json.dumps(records, indent=2) + "\n")
    return table


def _report(i: int, total: int, rec: dict) -> None:
    print(f"[{i}/{total}] {rec['notebook']}: {rec['status']} in {rec['seconds']:.1f} s"
          + (f": {rec['error']}" if rec["error"] else ""), flush=True)


def _run_all(books: list[Path], out_dir: Path, profile: str, extra: dict, jobs: int) -> list[dict]:
    """Run `books`, `jobs` at a time (each kernel its own process); records in reading order."""
    if jobs == 1:
        records = []
        for i, path in enumerate(books, 1):
            print(f"[{i}/{len(books)}] {path.stem} ({profile}) ...", flush=True)
            records.append(run_notebook(path, out_dir, profile, extra,
                                        progress=sys.stderr.isatty()))
            _report(i, len(books), records[-1])
        return records
    from concurrent.futures import ThreadPoolExecutor, as_completed

    print(f"{len(books)} notebooks ({profile}), {jobs} at a time ...", flush=True)
    with ThreadPoolExecutor(jobs) as pool:  # the threads only wait on their kernels
        futures = {pool.submit(run_notebook, path, out_dir, profile, extra): path
                   for path in books}
        for i, future in enumerate(as_completed(futures), 1):
            _report(i, len(books), future.result())
    return [future.result() for future in futures]


def _parse_param(text: str) -> tuple[str, object]:
    """'k=v' -> (k, Python literal v, or the string v)."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise ValueError(f"-p {text!r} should look like name=value, e.g. -p seed=3")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code (1 if any notebook failed)."""
    parser = argparse.ArgumentParser(prog="python -m mmlearn_helpers.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="numbers or names (default: all)")
    parser.add_argument("--profile", default="fast", help=f"one of {PROFILES} (default fast)")
    parser.add_argument("--notebooks-dir", default=str(NOTEBOOKS_DIR), help="where to look")
    parser.add_argument("--out", default="runs", help="folder for executed copies and summary")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="extra notebook parameter, e.g. -p seed=3 (repeatable)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="notebooks run at the same time, each in its own kernel (default 1)")
    args = parser.parse_args(argv)
    try:  # refuse bad arguments before any notebook starts
        check_profile(args.profile)
        books = find_notebooks(args.notebooks, Path(args.notebooks_dir))
        out_dir = check_results_dir(args.out)
        check_results_dir(out_dir / "results")
        extra = dict(_parse_param(p) for p in args.param)
        if args.jobs < 1:
            raise ValueError(f"--jobs {args.jobs}; expected a positive number of notebooks")
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    start = time.perf_counter()
    records = _run_all(books, out_dir, args.profile, extra, args.jobs)
    print("\n" + summarize(records, out_dir))
    print(f"{len(records)} notebooks in {time.perf_counter() - start:.1f} s "
          f"({args.jobs} at a time)")
    print(f"Executed notebooks and summary.md / summary.json are in {out_dir}")
    failed = [r for r in records if r["status"] != "ok"]
    for rec in failed:
        print(f"FAILED {rec['notebook']}: {rec['error']} (see {rec['output']})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
