"""The set-up files agree with each other, so conda and pip users get the same libraries."""

import sys
from pathlib import Path

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def _norm(req: str) -> str:
    return "".join(req.split()).replace('"', "'").lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["dev"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert sorted(map(_norm, pip)) == sorted(map(_norm, wanted)), (
        "environment.yml's pip list and pyproject.toml (dependencies + dev) drifted apart")


def test_readme_gives_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme


def test_makefile_has_the_documented_targets():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run:", "test:", "lab:", "data:", "bench:"):
        assert f"\n{target}" in makefile, f"Makefile lacks the target {target}"


def test_importing_the_helpers_prints_nothing_to_stderr():
    """TensorFlow's oneDNN notice would otherwise land in every executed notebook."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "KERAS_"))}
    done = subprocess.run([sys.executable, "-c", "import mmlearn_helpers, keras"], env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    assert done.stderr == "", f"import wrote to stderr: {done.stderr[:300]!r}"
