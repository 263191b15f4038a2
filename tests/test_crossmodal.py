"""Cross-modal knowledge transfer: soft targets and distillation into a student."""

import keras
import numpy as np
import pytest

from mmlearn_helpers.crossmodal import agreement, distill, soft_targets
from mmlearn_helpers.data import load_dataset
from mmlearn_helpers.features import flatten, make_probe
from mmlearn_helpers.models import classifier, mlp_encoder
from mmlearn_helpers.training import predict_proba


def test_soft_targets_keep_the_ranking_and_soften_with_temperature():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    np.testing.assert_allclose(soft_targets(probs), probs, atol=1e-6)
    soft = soft_targets(probs, temperature=3.0)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-6)
    assert (soft.argmax(axis=1) == probs.argmax(axis=1)).all()
    assert soft[0, 0] < probs[0, 0] and soft[0, 2] > probs[0, 2]


def test_soft_targets_refuse_bad_input():
    with pytest.raises(ValueError, match="sum to 1"):
        soft_targets(np.array([[0.5, 0.2]]))
    with pytest.raises(ValueError, match="shape"):
        soft_targets(np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="temperature=0"):
        soft_targets(np.array([[0.5, 0.5]]), temperature=0)


def test_agreement_counts_top_class_matches():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert agreement(probs, np.array([0, 1, 1, 1])) == 0.75
    with pytest.raises(ValueError, match="expected"):
        agreement(probs, np.array([0, 1]))


def test_student_learns_from_a_teacher_without_labels():
    """A teacher fitted on half of the labels teaches a student on the other, unlabelled half."""
    train, test = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    half = train.n // 2
    teacher = make_probe("logistic").fit(flatten(train.x["image"][:half]), train.y[:half])
    probs = teacher.predict_proba(flatten(train.x["image"][half:]))
    keras.utils.set_random_seed(0)
    student = classifier(mlp_encoder((8, 8, 1), (32,)))
    before = agreement(predict_proba(student, test.x["image"]), test.y)
    # the student's data: inputs and the teacher's targets, no labels
    distill(student, train.x["image"][half:], soft_targets(probs, temperature=2.0),
            epochs=40, lr=3e-3, seed=0)
    after = agreement(predict_proba(student, test.x["image"]), test.y)
    assert before < 0.3 and after > 0.8, (before, after)


def test_distill_refuses_mismatched_targets_and_bad_settings():
    student = classifier(mlp_encoder((8, 8, 1), (4,)))
    x = np.zeros((6, 8, 8, 1), np.float32)
    good = np.full((6, 10), 0.1, np.float32)
    with pytest.raises(ValueError, match=r"expected \(6, 10\)"):
        distill(student, x, good[:, :5], epochs=1, lr=1e-3, seed=0)
    with pytest.raises(ValueError, match=r"expected \(6, 10\)"):
        distill(student, x, good[:4], epochs=1, lr=1e-3, seed=0)
    with pytest.raises(ValueError, match="epochs=0"):
        distill(student, x, good, epochs=0, lr=1e-3, seed=0)
    with pytest.raises(ValueError, match="lr=2"):
        distill(student, x, good, epochs=1, lr=2, seed=0)
    with pytest.raises(TypeError, match="keras.Model"):
        distill("model", x, good, epochs=1, lr=1e-3, seed=0)
