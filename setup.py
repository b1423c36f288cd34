"""Build hook: the wheel ships the dashboard (app/) and the tutorials (notebooks/).

Everything else about the package is in pyproject.toml. The repository keeps one copy of
each shipped file; building copies them into the build's fcfd_viz/_app and
fcfd_viz/_notebooks (the list is fcfd_viz/io/shipped.py's SHIPPED), where `fcfd app` and
`fcfd notebooks` find them in an installation without a source tree. An editable install
(`pip install -e .`) copies nothing: it runs the checkout's app/ and notebooks/.
"""

import runpy
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
shipped = runpy.run_path(str(ROOT / "fcfd_viz" / "io" / "shipped.py"))


class BuildPyShippingAppAndNotebooks(build_py):
    """build_py, then the app and notebook files into the built package."""

    def run(self):
        super().run()
        if not self.editable_mode:
            shipped["copy_shipped"](ROOT, Path(self.build_lib) / "fcfd_viz")


setup(cmdclass={"build_py": BuildPyShippingAppAndNotebooks})
