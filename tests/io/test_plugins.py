"""The user's model modules: imported by name, from ``FCFD_IMPORT`` and from entry points of
the group ``fcfd_viz.models``; one line naming the module when one fails."""

from __future__ import annotations

import pytest

from fcfd_viz import models
from fcfd_viz.errors import UserError
from fcfd_viz.io import plugins


def test_env_modules_are_comma_separated(monkeypatch):
    assert plugins.env_modules(" a.b, ,c ") == ["a.b", "c"]
    monkeypatch.setenv("FCFD_IMPORT", "x,y")
    assert plugins.env_modules() == ["x", "y"]
    monkeypatch.delenv("FCFD_IMPORT")
    assert plugins.env_modules() == []


def test_a_module_named_registers_its_architectures(model_module, monkeypatch):
    monkeypatch.delenv("FCFD_IMPORT", raising=False)
    model_module("user_nets_a", "user_tiny_a")
    with pytest.raises(UserError, match="fcfd --import MODULE"):
        models.create("user_tiny_a")
    assert plugins.load_plugins(["user_nets_a"])[0] == "user_nets_a"
    net = models.create("user_tiny_a", num_classes=3)
    assert net.arch == "user_tiny_a" and net.feature_shapes((3, 8, 8)) == [(4, 8, 8), (8, 4, 4)]
    assert plugins.load_plugins(["user_nets_a"])  # again: a no-op, not "registered twice"


def test_fcfd_import_is_read_where_an_architecture_is_looked_up(model_module, monkeypatch):
    model_module("user_nets_b", "user_tiny_b")
    monkeypatch.setenv("FCFD_IMPORT", "user_nets_b")
    assert models.create("user_tiny_b", num_classes=2).num_classes == 2  # no explicit load


@pytest.mark.parametrize(
    "source, needle",
    [
        (None, "cannot import model module 'user_absent': ModuleNotFoundError: No module named"),
        (
            "raise RuntimeError('boom')\n",
            "cannot import model module 'user_bad': RuntimeError: boom",
        ),
        ("def f(:\n", "cannot import model module 'user_bad': SyntaxError"),
    ],
)
def test_a_module_that_fails_is_one_line_naming_it(model_module, source, needle):
    name = "user_absent" if source is None else "user_bad"
    if source is not None:
        model_module(name, source=source)
    with pytest.raises(UserError) as e:
        plugins.load_plugins([name])
    assert str(e.value).startswith(needle) and "\n" not in str(e.value)


def write_dist_info(folder, module: str, dist: str = "user_plugin_dist") -> None:
    """An installed distribution as importlib.metadata sees one (no pip): a dist-info folder
    with an entry point of the group fcfd_viz.models naming ``module``."""
    info = folder / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[fcfd_viz.models]\nnets = {module}\n")


def test_entry_points_of_the_group_are_imported(model_module, monkeypatch):
    monkeypatch.delenv("FCFD_IMPORT", raising=False)
    model_module("user_nets_ep", "user_tiny_ep")
    write_dist_info(model_module.folder, "user_nets_ep")
    assert "user_nets_ep" in plugins.load_plugins()
    assert models.create("user_tiny_ep").arch == "user_tiny_ep"


def test_a_failing_entry_point_names_it(model_module, monkeypatch):
    monkeypatch.delenv("FCFD_IMPORT", raising=False)
    model_module("user_nets_epbad", source="import no_such_module_here\n")
    write_dist_info(model_module.folder, "user_nets_epbad")
    with pytest.raises(UserError, match=r"'user_nets_epbad' \(entry point 'nets' of fcfd_viz"):
        plugins.load_plugins()
