"""Value checks (fcfd_viz.io.checks): every failure is one line naming the flag; NaN, infinities
and bools never pass as numbers."""

from __future__ import annotations

import pytest

from fcfd_viz.errors import UserError
from fcfd_viz.io import checks


def test_number_bounds_and_junk():
    checks.number("--lr", 0.1, 0, strict=True)
    checks.number("--weight-decay", 0, 0)
    for bad in (0, -1.0, float("nan"), float("inf"), True, "0.1", None):
        with pytest.raises(UserError, match=r"--lr must be a finite number > 0") as e:
            checks.number("--lr", bad, 0, strict=True)
        assert "\n" not in str(e.value)


def test_integer_and_choice():
    checks.integer("--epochs", 3, 1)
    for bad in (0, 2.5, True, "3"):
        with pytest.raises(UserError, match="--epochs must be an integer >= 1"):
            checks.integer("--epochs", bad, 1)
    checks.choice("--amp", "bf16", ("auto", "bf16"))
    with pytest.raises(UserError, match="--amp must be one of auto, bf16"):
        checks.choice("--amp", "fp8", ("auto", "bf16"))
    assert checks.is_count(0) and not checks.is_count(-1) and not checks.is_count(False)
    assert checks.is_number(1.5) and not checks.is_number(True)
