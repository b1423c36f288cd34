"""Which file a checkpoint path names: one rule for the CLI, the library and the app."""

from __future__ import annotations

import pytest

from fcfd_viz.checkpoints import checkpoint_file, load_checkpoint
from fcfd_viz.errors import UserError


def test_checkpoint_file_prefers_best_then_last(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(UserError, match="best.pt not found"):
        checkpoint_file(run)
    (run / "last.pt").write_bytes(b"x")
    assert checkpoint_file(run) == run / "last.pt"
    (run / "best.pt").write_bytes(b"x")
    assert checkpoint_file(run) == run / "best.pt"
    assert checkpoint_file(run / "last.pt") == run / "last.pt"  # a file names itself
    with pytest.raises(UserError, match="nope.pt not found"):
        checkpoint_file(tmp_path / "nope.pt")
    with pytest.raises(UserError, match="best.pt is unreadable"):  # load follows the same rule
        load_checkpoint(run)
