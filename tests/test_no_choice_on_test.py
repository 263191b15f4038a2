"""No choice is made on a test split: a static scan of the notebooks' code and the helpers' recipes.

A scan cannot prove the absence of test tuning; it catches the forms it has been seen in: a
`max`/`min`/`sorted` with a `key=` over test scores, a fusion weight tuned on test data, and
recipes whose comments say they were chosen on test numbers.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
HELPERS = sorted((ROOT / "mmlearn_helpers").rglob("*.py"))
TESTISH = re.compile(r"\b\w*test\w*\b|[\"']test[\"']")
CHOOSERS = {"max", "min", "sorted", "best_weight", "argmax"}


def _code(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def _choices_on_test(source: str) -> list[str]:
    """Calls of a chooser whose selecting part (key=, or best_weight's args) names test data."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", getattr(node.func, "attr", ""))
        if name not in CHOOSERS:
            continue
        parts = [kw.value for kw in node.keywords if kw.arg == "key"]
        if name == "best_weight":
            parts = list(node.args) + [kw.value for kw in node.keywords]
        text = " ".join(ast.unparse(p) for p in parts)
        if TESTISH.search(text):
            found.append(ast.unparse(node))
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_choose_nothing_on_test_scores(path):
    assert _choices_on_test(_code(path)) == []


def test_the_scan_catches_a_choice_on_test():
    assert _choices_on_test("best = max(ws, key=lambda w: acc(y_test, w))")
    assert _choices_on_test("w = fusion.best_weight(p_image, p_audio, y_test)")
    assert not _choices_on_test("best = max(ws, key=lambda w: acc(y_val, w))")


def _test_choices_said(text: str) -> list[str]:
    """Sentences that say a choice was made on test numbers (not "never on test")."""
    sentences = re.split(r"(?<=[.;])\s+", re.sub(r"\s*\n\s*#?\s*", " ", text))
    claim = re.compile(r"(?:chosen|checked|tuned|picked|selected) on [^.;:]*\btest\b", re.I)
    return [s for s in sentences if claim.search(s)
            and not re.search(r"\b(never|not|validation)\b", s, re.I)]


def test_the_recipe_scan_reads_claims_not_warnings():
    assert _test_choices_said("# the budget was chosen on the\n# target test split (3 seeds).")
    assert not _test_choices_said("Chosen on validation, never on the test split.")
    assert not _test_choices_said("Never pass test data: a weight tuned on test is optimistic.")


@pytest.mark.parametrize("path", HELPERS, ids=lambda p: p.stem)
def test_recipes_are_not_chosen_on_test(path):
    claims = _test_choices_said(path.read_text())
    assert claims == [], f"{path.name} says a choice was made on test: {claims}"
