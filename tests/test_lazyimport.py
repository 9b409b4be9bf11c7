"""wstool/lazyimport.py: modules deferred while websockets is imported still work.

Each check runs in a fresh interpreter, so that what it imports is really not loaded yet.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import scaled
from wstool.client.session import _proxy_settings_possible


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=scaled(30))
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_deferred_module_loads_on_first_use() -> None:
    out = run_python("""
import sys
from wstool.lazyimport import deferred
with deferred("xml.dom.minidom"):
    import xml.dom.minidom
    print("inside", type(sys.modules["xml.dom.minidom"]).__name__)
print("after block", "xml.dom.minidom" in sys.modules)
print(xml.dom.minidom.parseString("<a>b</a>").documentElement.tagName)
print("after use", type(sys.modules["xml.dom.minidom"]).__name__)
""")
    assert out.split("\n") == ["inside _StandIn", "after block False", "a", "after use module",
                               ""]


def test_a_later_import_is_a_real_import() -> None:
    out = run_python("""
from wstool.lazyimport import deferred
with deferred("xml.dom.minidom"):
    import xml.dom.minidom as kept
import xml.dom.minidom as real
print(type(real).__name__, kept.parseString is real.parseString)
""")
    assert out == "module True\n"


def test_a_module_already_loaded_is_left_alone() -> None:
    out = run_python("""
import sys, json
from wstool.lazyimport import deferred
with deferred("json"):
    import json as inside
print(inside is json, sys.modules["json"] is json)
""")
    assert out == "True True\n"


def test_websockets_still_reads_proxy_settings_after_deferral() -> None:
    # What a proxied connection does (the tests in test_connect_proxy.py run it end to end).
    out = run_python("""
import os
os.environ["http_proxy"] = "http://127.0.0.1:9"
import wstool.client.session
from websockets.proxy import get_proxy
from websockets.uri import parse_uri
print(get_proxy(parse_uri("ws://example.test/")))
""")
    assert out == "http://127.0.0.1:9\n"


@pytest.mark.parametrize(("environ", "possible"), [
    ({}, False),
    ({"PATH": "/bin", "HOME": "/root"}, False),
    ({"http_proxy": ""}, False),  # urllib ignores empty values
    ({"http_proxy": "http://p:3128"}, True),
    ({"HTTPS_PROXY": "http://p:3128"}, True),
    ({"All_Proxy": "socks5://p:1080"}, True),
    ({"no_proxy": "localhost"}, True),  # let urllib decide
])
def test_proxy_settings_possible(environ: dict[str, str], possible: bool) -> None:
    expected = True if sys.platform in ("darwin", "win32") else possible
    assert _proxy_settings_possible(environ) is expected



def test_version_loads_neither_config_nor_the_connect_path() -> None:
    # `wstool --version` (issue 14, start-up): config.py's records and urllib.parse are
    # ~11 % of its instructions, and only commands need them. -X importtime names every
    # module imported, whatever way the process exits.
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "wstool", "--version"],
                            capture_output=True, text=True, timeout=scaled(30))
    assert result.returncode == 0 and result.stdout.startswith("wstool, version")
    loaded = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
              if line.startswith("import time:")}
    assert "wstool.cli.fast" in loaded  # what the check reads is there
    # (urllib.parse is not checked: an editable install's import hook loads it.)
    # Nor click since cli/fast.py (tests/test_fast_connect.py).
    assert not loaded & {"wstool.config", "asyncio", "websockets", "wstool.client", "click"}


def test_patterns_off_the_one_shot_path_are_compiled_on_first_use() -> None:
    # Issue 14: re compiles in Python (~1M instructions a pattern); a one-shot connect
    # checks no header name and escapes no control character.
    out = run_python("""
import re
def compiled():
    keys = [*getattr(re, "_cache", {}), *getattr(re, "_cache2", {})]
    return {k[1] for k in keys if isinstance(k, tuple) and len(k) > 1}
import wstool.config as config, wstool.term.render as render
patterns = {config._TOKEN_PATTERN, config._THRESHOLD_PATTERN, render._CONTROL_PATTERN,
            render._CONTROL_WITH_TAB_PATTERN}
print(sorted(patterns & compiled()))
print(render.escape("plain ascii"), render.escape("tab\\there"), render.escape("\\x1b[31m"),
      render.escape("a\\tb", keep_tab=False), render.escape("\\u202e") == "\\\\u202e")
config.parse_header("X-A: b")
config.parse_threshold("p99>50ms")
print(len(patterns & compiled()))
""")
    assert out.split("\n") == ["[]", "plain ascii tab\there \\e[31m a\\tb True", "4", ""]
