"""Defer standard-library modules that a library imports but rarely uses.

``websockets`` imports ``importlib.metadata`` (its ``version`` module calls it only in a
development build) and, through its proxy support, ``urllib.request`` (called only to
read the proxy settings). Together with what they pull in (``email``, ``http.client``,
``zipfile``, ``tempfile`` ...) that is about 20 ms of a 120 ms one-shot
``wstool connect``, the target being "no slower than wscat". ``session.py`` imports
websockets inside :func:`deferred`, and ``Session`` skips the proxy lookup when no
``*_proxy`` variable is set, so a direct connection never loads either module.

Python 3.11 has no lazy imports of its own, and ``importlib.util.LazyLoader`` does not
help here: the import system reads ``module.__spec__`` when it finds a module in
``sys.modules``, and any attribute read makes a ``LazyLoader`` module load.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class _StandIn(types.ModuleType):
    """Takes a module's place until one of its attributes is read.

    ``import a.b`` inside :func:`deferred` gets this object; the first attribute read
    on it (``a.b.name``) imports the real module and answers from it. After the real
    import, ``a.b`` is the real module again, so only a caller that kept a reference to
    the stand-in itself (``import a.b as c``) keeps going through it.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(_import_real(self.__name__), name)


def _import_real(name: str) -> types.ModuleType:
    if isinstance(sys.modules.get(name), _StandIn):
        del sys.modules[name]
    return importlib.import_module(name)


@contextmanager
def deferred(*names: str) -> Iterator[None]:
    """While the block runs, ``import NAME`` binds a stand-in that imports on first use.

    A module already imported is left alone. On leaving the block the stand-ins are taken
    out of ``sys.modules`` (so a later ``import NAME`` anywhere is a real import); the
    modules imported in the block keep theirs, which load the real module on first use.
    """
    installed: list[str] = []
    for name in names:
        if name in sys.modules:
            continue
        parent, _, child = name.rpartition(".")
        if parent:
            importlib.import_module(parent)
        stand_in = _StandIn(name)
        sys.modules[name] = stand_in
        if parent:
            setattr(sys.modules[parent], child, stand_in)
        installed.append(name)
    try:
        yield
    finally:
        for name in installed:
            if isinstance(sys.modules.get(name), _StandIn):
                del sys.modules[name]
