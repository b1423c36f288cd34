"""The analysis shape's helpers: tensors to JSON lists and back, results kept on disk."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pytest
import torch

from fcfd_viz.analysis import Analysis, Anisotropy, Attribution, FunctionalGap, Result
from fcfd_viz.analysis.base import result_file, stored, to_list, to_tensor


@dataclass
class Count(Result):
    n: int

    def to_dict(self) -> dict:
        return {"n": self.n}

    @classmethod
    def from_dict(cls, d: dict) -> Count:
        return cls(int(d["n"]))


def test_every_analysis_has_the_shape():
    for cls in (Anisotropy, Attribution, FunctionalGap):
        assert issubclass(cls, Analysis) and callable(cls.compute)
    with pytest.raises(TypeError):
        Result()  # abstract: to_dict and from_dict are the contract


def test_lists_and_tensors():
    t = torch.tensor([[1.0, math.inf], [math.nan, -2.5]])
    lists = to_list(t)
    assert lists == [[1.0, None], [None, -2.5]] and json.dumps(lists, allow_nan=False)
    back = to_tensor(lists)
    assert back.dtype == torch.float64 and back.shape == (2, 2) and math.isnan(back[0, 1])
    assert to_list(torch.tensor([3, 4])) == [3, 4] and to_list(None) is None
    assert to_tensor([[], []]).shape == (2, 0) and to_tensor(None) is None


def test_stored_computes_once_and_recomputes_an_outdated_file(tmp_path):
    path = result_file(tmp_path / "cache", "count", [("a.pt", 1.5), "eval", 10])
    assert path.parent == tmp_path / "cache" and path.name.startswith("count-")
    assert path != result_file(tmp_path / "cache", "count", [("a.pt", 1.5), "batch", 10])
    calls = []

    def compute():
        calls.append(1)
        return Count(len(calls))

    assert stored(Count, path, compute) == Count(1)
    assert stored(Count, path, compute) == Count(1) and len(calls) == 1  # read back
    path.write_text('{"old": true}')  # a file an earlier version wrote
    assert stored(Count, path, compute) == Count(2) and Count.load(path) == Count(2)


def test_a_cache_that_cannot_be_written_costs_the_cache_not_the_result(tmp_path, capsys):
    """Issue #29: a read-only runs folder made `fcfd report` and the gap page do all the work,
    then fail writing `.cache` and discard the result. (A file where the cache folder goes
    fails the same way for root, whom a read-only mode would not stop.)"""
    (tmp_path / ".cache").write_text("not a folder")
    path = result_file(tmp_path / ".cache", "count", ["k"])
    calls = []

    def compute():
        calls.append(1)
        return Count(len(calls))

    assert stored(Count, path, compute) == Count(1)
    err = capsys.readouterr().err
    assert "not cached" in err and str(tmp_path / ".cache") in err and len(err.splitlines()) == 1
    assert stored(Count, path, compute) == Count(2)  # nothing kept: measured again
