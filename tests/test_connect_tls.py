"""wss:// with trustme certificates: verification, --cacert, -k, client certificates, SNI."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.conftest import (
    ServerThread,
    lib_echo,
    run_wstool,
    run_wstool_inprocess,
    start_websockets_server,
    write_leaf_cert,
)


def _tls_server(
    st: ServerThread, ca: trustme.CA, *, require_client_cert: bool = False,
    names: tuple[str, ...] = ("localhost", "127.0.0.1"),
) -> str:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        ca.configure_trust(context)
    _s, url = start_websockets_server(st, lib_echo, ssl=context)
    return url.replace("ws://", "wss://")


@pytest.fixture
def wss_url(server_thread: ServerThread, ca: trustme.CA) -> Iterator[str]:
    yield _tls_server(server_thread, ca)


def test_untrusted_certificate_fails_with_hint(wss_url: str) -> None:
    proc = run_wstool_inprocess("connect", wss_url, input=b"hi\n")
    assert proc.returncode == 3
    assert "TLS certificate" in proc.stderr and "not trusted" in proc.stderr
    assert "--cacert" in proc.stderr and "--insecure" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_cacert_trusts_the_server(wss_url: str, ca_file: str) -> None:
    proc = run_wstool_inprocess("connect", "--cacert", ca_file, wss_url, input=b"secure\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"secure\n"


def test_insecure_connects_and_warns(wss_url: str) -> None:
    proc = run_wstool_inprocess("connect", "-k", wss_url, input=b"anyway\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"anyway\n"
    assert "--insecure" in proc.stderr and "not verified" in proc.stderr


def test_server_name_overrides_hostname_check(
    server_thread: ServerThread, ca: trustme.CA, ca_file: str
) -> None:
    url = _tls_server(server_thread, ca, names=("ws.example.test",))
    proc = run_wstool_inprocess("connect", "--cacert", ca_file, url, input=b"x\n")
    assert proc.returncode == 3 and "not trusted" in proc.stderr
    proc = run_wstool_inprocess("connect", "--cacert", ca_file, "--server-name",
                                "ws.example.test", url,
                                input=b"x\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"x\n"


def test_client_certificate(
    server_thread: ServerThread, ca: trustme.CA, ca_file: str, tmp_path: Path
) -> None:
    url = _tls_server(server_thread, ca, require_client_cert=True)
    cert, key = write_leaf_cert(ca, "client@example.test", tmp_path)

    without = run_wstool_inprocess("connect", "--cacert", ca_file, url, input=b"x\n")
    assert without.returncode == 3, without.stderr
    assert "Traceback" not in without.stderr

    with_cert = run_wstool_inprocess("connect", "--cacert", ca_file, "--cert", str(cert), "--key",
                                     str(key), url, input=b"mutual\n")
    assert with_cert.returncode == 0, with_cert.stderr
    assert with_cert.stdout == b"mutual\n"

    combined = tmp_path / "combined.pem"
    combined.write_bytes(cert.read_bytes() + key.read_bytes())
    proc = run_wstool_inprocess("connect", "--cacert", ca_file, "--cert", str(combined), url,
                                input=b"combined\n")
    assert proc.returncode == 0, proc.stderr

    cert_only = run_wstool_inprocess("connect", "--cacert", ca_file, "--cert", str(cert), url,
                                     input=b"x\n")
    assert cert_only.returncode == 2
    assert "holds no private key" in cert_only.stderr and "--key" in cert_only.stderr


def test_encrypted_client_key(
    server_thread: ServerThread, ca: trustme.CA, ca_file: str, tmp_path: Path
) -> None:
    url = _tls_server(server_thread, ca, require_client_cert=True)
    cert, key = write_leaf_cert(ca, "client@example.test", tmp_path, password=b"s3cret")
    assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes()
    args = ("connect", "--cacert", ca_file, "--cert", str(cert), "--key", str(key), url)

    # No pass phrase, in a pipe: a usage error, and OpenSSL must not prompt by itself.
    # (An empty WSTOOL_KEY_PASSWORD counts as unset, as for any click envvar.)
    proc = run_wstool(*args, input=b"x\n", env={"WSTOOL_KEY_PASSWORD": ""})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (f"wstool: error: --key {key} is encrypted: give its pass phrase in "
                           "WSTOOL_KEY_PASSWORD or with --key-password\n")

    by_env = run_wstool(*args, input=b"env\n", env={"WSTOOL_KEY_PASSWORD": "s3cret"})
    assert by_env.returncode == 0, by_env.stderr
    assert by_env.stdout == b"env\n"

    by_option = run_wstool(*args, "--key-password", "s3cret", input=b"option\n")
    assert by_option.returncode == 0, by_option.stderr
    assert by_option.stdout == b"option\n"

    wrong = run_wstool(*args, "--key-password", "guess", input=b"x\n",
                       env={"WSTOOL_KEY_PASSWORD": "s3cret"})  # the option wins
    assert wrong.returncode == 1, wrong.stderr
    assert wrong.stderr == f"wstool: error: cannot read --key {key}: wrong pass phrase\n"

    combined = tmp_path / "combined.pem"  # certificate and encrypted key in one file
    combined.write_bytes(cert.read_bytes() + key.read_bytes())
    proc = run_wstool("connect", "--cacert", ca_file, "--cert", str(combined), url,
                      input=b"combined\n", env={"WSTOOL_KEY_PASSWORD": "s3cret"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"combined\n"


@pytest.mark.parametrize(
    ("args", "status", "fragment"),
    [
        (["--key", "k.pem"], 2, "--key needs --cert"),
        (["--cacert", "/nonexistent/ca.pem"], 1, "cannot read --cacert /nonexistent/ca.pem"),
        (["--cert", "/nonexistent/c.pem", "--key", "/nonexistent/k.pem"], 1, "cannot read --cert"),
    ],
)
def test_bad_tls_files(wss_url: str, args: list[str], status: int, fragment: str) -> None:
    proc = run_wstool_inprocess("connect", *args, wss_url, input=b"")
    assert proc.returncode == status, proc.stderr
    assert fragment in proc.stderr
    assert "Traceback" not in proc.stderr


def test_tls_to_a_plain_server_fails_cleanly(lib_echo_url: str) -> None:
    proc = run_wstool_inprocess("connect", lib_echo_url.replace("ws://", "wss://"), input=b"")
    assert proc.returncode == 3, proc.stderr
    assert "TLS handshake" in proc.stderr




def test_plain_ws_to_a_tls_server_suggests_wss(wss_url: str) -> None:
    """Issue 10: the reverse of the test above had no hint."""
    proc = run_wstool("connect", wss_url.replace("wss://", "ws://"), input=b"x\n")
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.strip().endswith("(does it expect TLS? try wss://)")
    assert len(proc.stderr.strip().splitlines()) == 1
