"""The one C extension, optional: wstool bench's echo-mode receive path.

Everything else is in pyproject.toml. ``optional=True``: where no C compiler is
present the build prints a warning and goes on, and the same path runs in Python
(wstool/bench/generator.py; bench/README.md has the measured difference).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("wstool.bench._closedloop", ["wstool/bench/_closedloop.c"],
                             optional=True)])
