"""The frame Great Expectations validates: narrow numeric columns widened to the dtypes GX checks vectorised,
with no value changed and no type check turned (pipelines/validation/checkpoints.widened)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.validation.checkpoints import suite_definition, widened


def _suite(*type_lists: tuple[str, list[str]]) -> dict:
    return {"expectations": [{"type": "expect_column_values_to_be_in_type_list",
                              "kwargs": {"column": c, "type_list": t}} for c, t in type_lists]}  # fmt: skip


def test_narrow_numbers_become_64_bit_with_the_same_values():
    frame = pd.DataFrame({"hour": np.array([0, 23, 7], dtype="int8"), "minute": np.array([0, 59, 30], dtype="uint8"),
                          "temp": np.array([1.5, -3.25, 40.0], dtype="float32"), "carrier": ["AA", "B6", "UA"],
                          "flight": np.array([1, 2, 3], dtype="int64")})  # fmt: skip
    wide = widened(frame, _suite())
    assert wide.dtypes.astype(str).to_dict() == {"hour": "int64", "minute": "int64", "temp": "float64",
                                                 "carrier": "object", "flight": "int64"}  # fmt: skip
    pd.testing.assert_frame_equal(wide, frame, check_dtype=False)
    assert str(frame["hour"].dtype) == "int8"  # the landed frame itself is left as it was


def test_a_column_whose_type_the_suite_restricts_keeps_a_type_it_would_fail():
    frame = pd.DataFrame({"flight": np.array([1, 2], dtype="int8"), "sched_dep_time": np.array([5, 6], dtype="int16")})
    wide = widened(frame, _suite(("flight", ["int64", "int32", "int16"]), ("sched_dep_time", ["int64", "int16"])))
    assert str(wide["flight"].dtype) == "int8"  # int8 is not allowed: widening would hide the fault
    assert str(wide["sched_dep_time"].dtype) == "int64"  # int16 allowed, and so is int64


def test_the_flights_suite_sees_its_range_columns_as_int64():
    suite = suite_definition("raw_flights")
    frame = pd.DataFrame({c: np.array([1], dtype="int16") for c in ("hour", "minute", "sched_dep_time", "flight")})
    assert set(widened(frame, suite).dtypes.astype(str)) == {"int64"}
