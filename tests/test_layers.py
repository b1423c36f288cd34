"""The package's layers, held to what each package's docstring declares.

Every subpackage's ``__init__`` docstring ends with ``May import: a, b, ...``: the layers (or,
inside ``analysis``, the sibling subpackages and modules) its modules may import. The import
graph is read from the source (every ``import``, lazy and ``TYPE_CHECKING`` ones included, as a
reader or a type checker sees them), and must be acyclic module by module.
"""

from __future__ import annotations

import ast
import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "fcfd_viz"


def module_files() -> dict[str, Path]:
    """``{"runs.layout": path, "analysis": path of its __init__, "": the root __init__}``."""
    out = {}
    for f in PKG.rglob("*.py"):
        parts = f.relative_to(PKG).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


MODULES = module_files()


def imports(name: str) -> set[str]:
    """The fcfd_viz modules ``name`` imports (``from pkg import sub`` counts as ``pkg.sub``)."""
    out: set[str] = set()
    is_pkg = MODULES[name].name == "__init__.py"
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against this module's package
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                base_name = ".".join(["fcfd_viz", *base, *([node.module] if node.module else [])])
            else:
                base_name = node.module or ""
            subs = [f"{base_name}.{a.name}" for a in node.names]
            found = [s for s in subs if s.removeprefix("fcfd_viz.") in MODULES]
            targets = found if len(found) == len(subs) else [*found, base_name]
        else:
            continue
        for t in targets:
            if t != "fcfd_viz" and not t.startswith("fcfd_viz."):
                continue
            t = t.removeprefix("fcfd_viz").removeprefix(".")
            while t and t not in MODULES:  # an attribute of a module: the module
                t = t.rpartition(".")[0]
            if t != name:
                out.add(t)
    return out


GRAPH = {m: imports(m) for m in MODULES}


def declared() -> dict[str, list[str]]:
    """``{package: [what its docstring says it may import]}`` for every subpackage."""
    out = {}
    for name, f in MODULES.items():
        if f.name != "__init__.py" or not name:
            continue
        doc = ast.get_docstring(ast.parse(f.read_text())) or ""
        m = re.search(r"May import: (.*?)\.(?:\s|$)", " ".join(doc.split()))
        text = re.sub(r"\(.*?\)", "", m.group(1)) if m else None  # asides in brackets
        out[name] = [e.strip() for e in text.split(",") if e.strip()] if m else None
    return out


DECLARED = declared()


def unit(module: str) -> str:
    """The innermost package with a declaration that holds ``module`` ("" for the root's)."""
    parts = module.split(".")
    for k in range(len(parts), 0, -1):
        if ".".join(parts[:k]) in DECLARED:
            return ".".join(parts[:k])
    return ""


def allowed(source: str, target: str) -> bool:
    src, dst = unit(source), unit(target)
    if target in ("", "errors") or src == dst:
        return True  # the root (version) and the one error type are for everyone
    if MODULES[source].name == "__init__.py" and dst.startswith(source + "."):
        return True  # a package's façade re-exports its own subpackages
    entries = DECLARED[src] or []
    if entries == ["every layer above"]:  # the top: the CLI
        return True
    return any(target == e or target.startswith(e + ".") for e in entries)


def test_every_subpackage_says_what_it_is_and_what_it_may_import():
    missing = sorted(p for p, entries in DECLARED.items() if entries is None)
    assert not missing, f"these packages' docstrings lack a 'May import:' line: {missing}"
    known = set(MODULES)
    for package, entries in DECLARED.items():
        for e in entries:
            assert e in known or e == "every layer above", f"{package} names unknown {e!r}"


def test_no_layer_imports_one_it_may_not():
    bad = sorted(
        f"{src} -> {dst}"
        for src, targets in GRAPH.items()
        for dst in targets
        if src != "__main__" and not allowed(src, dst)
    )
    assert not bad, "imports against the declared layers:\n" + "\n".join(bad)


def test_no_two_layers_may_import_each_other():
    mutual = sorted(
        f"{a} <-> {b}"
        for a, ea in DECLARED.items()
        for b, eb in DECLARED.items()
        if a < b and b in (ea or []) and a in (eb or [])
    )
    assert not mutual


def test_no_module_import_cycle():
    try:
        list(TopologicalSorter(GRAPH).static_order())
    except CycleError as e:
        pytest.fail(f"import cycle: {' -> '.join(e.args[1])}")


def test_the_checks_see_a_violation(monkeypatch):
    """The checks are live: a data module importing the trainer is refused, and a cycle
    between two modules is found."""
    assert not allowed("data.datasets", "training.trainer")
    assert allowed("training.trainer", "data.datasets")
    cyclic = {**GRAPH, "io.files": GRAPH["io.files"] | {"runs.layout"}}
    with pytest.raises(CycleError):
        list(TopologicalSorter(cyclic).static_order())


def test_every_package_docstring_names_its_modules():
    """The layout is read in the package docstrings (not the README): a module its package
    does not mention is lost to a newcomer."""
    missing = []
    for package, f in MODULES.items():
        if f.name != "__init__.py":
            continue
        doc = ast.get_docstring(ast.parse(f.read_text())) or ""
        for child in sorted(f.parent.iterdir()):
            name = child.stem if child.suffix == ".py" else child.name
            is_module = child.suffix == ".py" or (child / "__init__.py").exists()
            if not is_module or name.startswith("_"):
                continue
            if not re.search(rf"(?<![\w])\.?{re.escape(name)}(?![\w])", doc):
                missing.append(f"{package or 'fcfd_viz'}: {name}")
    assert not missing, "package docstrings that do not name these modules:\n" + "\n".join(missing)


ROOT = PKG.parent
LINE_LIMITS = {"fcfd_viz": 300, "app": 200}  # a file one reads whole; the app a thin shell


def long_files(folder: Path, limit: int) -> list[str]:
    """The Python files under ``folder`` longer than ``limit`` lines, with their length."""
    out = []
    for f in sorted(folder.rglob("*.py")):
        n = len(f.read_text().splitlines())
        if n > limit:
            out.append(f"{f.relative_to(folder.parent)}: {n} lines (limit {limit})")
    return out


@pytest.mark.parametrize("folder", sorted(LINE_LIMITS))
def test_no_file_is_too_long(folder: str):
    long = long_files(ROOT / folder, LINE_LIMITS[folder])
    assert not long, "split these by concern:\n" + "\n".join(long)


def test_the_length_check_sees_a_long_file(tmp_path: Path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "ok.py").write_text("x = 1\n" * 3)
    (pkg / "sub" / "long.py").write_text("x = 1\n" * 4)
    assert long_files(pkg, 3) == ["pkg/sub/long.py: 4 lines (limit 3)"]


def test_the_tests_mirror_the_package():
    """Every folder of tests/ is a layer of the package (tests of ``fcfd_viz/runs`` live in
    ``tests/runs``), the app's, or the fixtures'."""
    tests = Path(__file__).parent
    folders = {p.name for p in tests.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
    packages = {name.split(".")[0] for name in DECLARED}
    assert folders - packages <= {"app", "fixtures"}, folders - packages - {"app", "fixtures"}
