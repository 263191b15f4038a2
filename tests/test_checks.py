"""The one argument-check rule: TypeError for a wrong type, ValueError for a wrong value."""

import numpy as np
import pytest

from mmlearn_helpers.checks import (
    check_choice,
    check_float,
    check_int,
    check_ints,
    check_labels,
    check_rate,
    check_seed,
)


def test_ints_refuse_other_types_with_a_type_error_and_bad_values_with_a_value_error():
    assert check_int(np.int64(3), "k", low=1) == 3 and type(check_int(3, "k")) is int
    for value in (True, 2.0, "2", None):
        with pytest.raises(TypeError, match=f"k={value!r} is a {type(value).__name__}; "
                                            "expected an int >= 1"):
            check_int(value, "k", low=1)
    with pytest.raises(ValueError, match="k=0 should be an int >= 1"):
        check_int(0, "k", low=1)
    with pytest.raises(ValueError, match=r"n=11 should be an int in \[0, 10\]"):
        check_int(11, "n", low=0, high=10)
    with pytest.raises(ValueError, match="seed=-1 should be an int >= 0"):
        check_seed(-1)


def test_floats_name_open_and_closed_bounds():
    assert check_float(1, "w", low=0, high=1) == 1.0
    with pytest.raises(ValueError, match=r"w=1\.5 should be a float in \[0, 1\]"):
        check_float(1.5, "w", low=0, high=1)
    with pytest.raises(ValueError, match=r"dropout=1 should be a float in \[0, 1\)"):
        check_float(1, "dropout", low=0, high=1, high_open=True)
    with pytest.raises(ValueError, match="C=0 should be a float > 0"):
        check_float(0, "C", low=0, low_open=True)
    with pytest.raises(ValueError, match="x=nan should be a float"):
        check_float(float("nan"), "x")
    with pytest.raises(TypeError, match="lr=True is a bool"):
        check_rate(True)
    with pytest.raises(ValueError, match=r"lr=1 should be a float in \(0, 1\), e\.g\. 1e-3"):
        check_rate(1)


def test_lists_of_ints_name_the_bad_entry():
    assert check_ints([1, 2], "ks", low=1) == (1, 2)
    assert check_ints((), "hidden", low=1, allow_empty=True) == ()
    with pytest.raises(ValueError, match=r"ks\[1\]=0 should be an int >= 1"):
        check_ints([1, 0], "ks", low=1)
    with pytest.raises(ValueError, match="ks is empty"):
        check_ints([], "ks", low=1)
    with pytest.raises(TypeError, match="ks='15' is a str; expected a list of ints"):
        check_ints("15", "ks", low=1)


def test_choices_and_labels():
    assert check_choice("val", "split", ("val", "test")) == "val"
    with pytest.raises(ValueError, match=r"split='dev' is not known; expected one of \('val',"):
        check_choice("dev", "split", ("val", "test"))
    with pytest.raises(ValueError, match=r"split=\['val'\] is not known"):
        check_choice(["val"], "split", ("val", "test"))
    y = check_labels([0, 2, 1], n=3, n_classes=3)
    assert y.dtype == np.int64 and y.tolist() == [0, 2, 1]
    with pytest.raises(TypeError, match=r"y has shape \(2, 1\) and dtype int64"):
        check_labels(np.zeros((2, 1), np.int64))
    with pytest.raises(ValueError, match="y_val has 2 labels but x_val has 3; expected equal"):
        check_labels([0, 1], "y_val", n=3, counted="x_val has")
    with pytest.raises(ValueError, match=r"y holds labels \[-1, 3\]; expected class indices"):
        check_labels([0, -1, 3], n_classes=3)
