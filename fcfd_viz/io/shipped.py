"""Where the dashboard and the tutorial notebooks are, in a checkout and in an installed wheel.

The repository keeps one copy of each: ``app/`` (the Streamlit dashboard) and ``notebooks/``
(the tutorials). Building a wheel copies them into the package as ``fcfd_viz/_app`` and
``fcfd_viz/_notebooks`` (``setup.py`` reads :data:`SHIPPED`), so ``fcfd app`` and
``fcfd notebooks`` work after ``pip install fcfd-viz`` with no source tree around. In a
checkout (``pip install -e .``) those folders do not exist and the checkout's are used.

Only the standard library at module level: ``setup.py`` runs this file before fcfd-viz
(or any of its dependencies) is installed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # fcfd_viz/, beside which they ship

# checkout folder -> (folder inside the package, the files shipped: globs in the checkout folder)
SHIPPED: dict[str, tuple[str, tuple[str, ...]]] = {
    # .streamlit/config.toml: the server settings of a `streamlit run` from any directory
    "app": ("_app", ("*.py", "*.md", "pages/*.py", ".streamlit/config.toml")),
    "notebooks": ("_notebooks", ("*.ipynb",)),
}


def shipped_files(checkout_folder: Path, name: str) -> list[Path]:
    """The files of ``SHIPPED[name]`` in ``checkout_folder``, relative to it, sorted."""
    return sorted(
        p.relative_to(checkout_folder)
        for pattern in SHIPPED[name][1]
        for p in checkout_folder.glob(pattern)
        if p.is_file()
    )


def copy_shipped(root: Path, package_dir: Path) -> list[Path]:
    """Copy every shipped file from the checkout ``root`` into ``package_dir`` (the build's
    ``fcfd_viz``); returns the files written. Used by ``setup.py`` at build time."""
    written = []
    for name, (target, _) in SHIPPED.items():
        for rel in shipped_files(root / name, name):
            dest = package_dir / target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / name / rel, dest)
            written.append(dest)
    return written


def shipped_dir(name: str) -> Path:
    """The folder holding ``name`` (``"app"`` or ``"notebooks"``): the copy inside an installed
    wheel, else the source checkout's. A one-line UserError when neither is there."""
    from fcfd_viz.errors import UserError

    packaged = PACKAGE / SHIPPED[name][0]
    checkout = PACKAGE.parent / name
    for folder in (packaged, checkout):
        if shipped_files(folder, name):
            return folder
    raise UserError(
        f"neither {packaged} nor {checkout} holds the {name} files: reinstall fcfd-viz "
        "(pip install fcfd-viz, or pip install -e . in a git checkout)"
    )


def app_script() -> Path:
    """``main.py`` of the dashboard (``streamlit run`` it)."""
    return shipped_dir("app") / "main.py"


def notebooks_dir() -> Path:
    """The folder of the tutorial notebooks."""
    return shipped_dir("notebooks")
