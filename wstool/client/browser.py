"""Bring a browser's request (issue 11): ``connect --curl`` and ``connect --har``.

A browser's developer tools give a WebSocket's handshake request two ways:
"Copy as cURL" (Chrome's shape for a socket: ``curl 'wss://host/path' \\`` then
one ``-H 'Name: value' \\`` per header, the cookies as ``-H 'Cookie: …'`` or
``-b '…'``, sometimes ``--compressed``; ``$'…'`` quoting when a value holds a
quote or a control character) and a HAR file (the entry's ``request.url`` and
``request.headers``). Either becomes a :class:`BrowserRequest`: the URL, the
headers to send, the subprotocols to offer, and the headers dropped because the
handshake makes its own (Upgrade, Connection, Sec-WebSocket-Key/-Version/
-Extensions, the Host when it is the URL's, HTTP/2 pseudo-headers) — the CLI
says on stderr which. Sec-WebSocket-Protocol becomes ``-s``. (``-H`` refuses
those headers with a usage error instead: typed by hand, they are a mistake;
pasted from a browser, they are expected.)

Pure: strings in, records out (the HAR through ``recording.py``).
"""

from __future__ import annotations

import shlex
from typing import NamedTuple

from wstool.errors import UsageError

# What the WebSocket handshake sends itself: a copy from the browser is dropped.
HANDSHAKE_MADE = frozenset({
    "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
    "sec-websocket-extensions", "sec-websocket-accept", "content-length",
})
# curl flags without a value that change nothing here (Chrome adds --compressed:
# an Accept-Encoding for a response body a WebSocket upgrade does not have).
_FLAGS_IGNORED = frozenset({"--compressed", "-s", "--silent", "-S", "--show-error", "-i",
                            "--include", "-N", "--no-buffer", "-v", "--verbose",
                            "--http1.1", "-L", "--location"})
_FLAGS_NOTED = {"-k": "-k/--insecure", "--insecure": "-k/--insecure"}


class BrowserRequest(NamedTuple):
    url: str
    headers: tuple[tuple[str, str], ...]  # to send, in the browser's order
    subprotocols: tuple[str, ...]  # from Sec-WebSocket-Protocol
    dropped: tuple[str, ...]  # header names left out (the handshake sends its own)
    notes: tuple[str, ...] = ()  # other things worth a line on stderr


def _authority(url: str) -> str:
    rest = url.partition("://")[2]
    authority = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2].lower()
    for default in (":80", ":443"):
        if authority.endswith(default):
            return authority[: -len(default)]
    return authority


def sort_headers(url: str, headers: list[tuple[str, str]], *,
                 notes: tuple[str, ...] = ()) -> BrowserRequest:
    """Split a browser's headers into what to send, the subprotocols, and the dropped."""
    kept: list[tuple[str, str]] = []
    subprotocols: list[str] = []
    dropped: list[str] = []
    for name, value in headers:
        lower = name.lower()
        made = lower in HANDSHAKE_MADE or name.startswith(":")
        if made or (lower == "host" and value.strip().lower() == _authority(url)):
            dropped.append(name)
        elif lower == "sec-websocket-protocol":
            subprotocols.extend(p.strip() for p in value.split(",") if p.strip())
        else:
            kept.append((name, value))
    return BrowserRequest(url, tuple(kept), tuple(subprotocols), tuple(dropped), notes)


_ANSI_C_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"',
                   "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "v": "\v",
                   "?": "?"}


def _ansi_c(text: str, start: int) -> tuple[str, int]:
    """Decode bash's ``$'…'`` from START (just after the opening quote): (value, end)."""
    out: list[str] = []
    i = start
    while i < len(text):
        c = text[i]
        if c == "'":
            return "".join(out), i + 1
        if c == "\\" and i + 1 < len(text):
            e = text[i + 1]
            if e in _ANSI_C_ESCAPES:
                out.append(_ANSI_C_ESCAPES[e])
                i += 2
                continue
            width = {"x": 2, "u": 4, "U": 8}.get(e)
            if width:
                digits = ""
                j = i + 2
                while j < len(text) and len(digits) < width and text[j] in \
                        "0123456789abcdefABCDEF":
                    digits += text[j]
                    j += 1
                if digits:
                    out.append(chr(int(digits, 16)))
                    i = j
                    continue
            out.append(c)
            i += 1
            continue
        out.append(c)
        i += 1
    raise UsageError("--curl: unclosed $'...' quote")


def _to_posix(text: str) -> str:
    """Line continuations out and ``$'…'`` into plain quoting, for shlex."""
    out: list[str] = []
    i, n = 0, len(text)
    quote: str | None = None
    while i < n:
        c = text[i]
        if quote is None:
            if c == "\\" and text[i + 1 : i + 3] == "\r\n":
                i += 3
                continue
            if c == "\\" and text[i + 1 : i + 2] == "\n":
                i += 2
                continue
            if c == "\\" and i + 1 < n:
                out.append(text[i : i + 2])
                i += 2
                continue
            if c == "$" and text[i + 1 : i + 2] == "'":
                value, i = _ansi_c(text, i + 2)
                out.append(shlex.quote(value))
                continue
            if c in "'\"":
                quote = c
        elif c == quote:
            quote = None
        elif quote == '"' and c == "\\" and i + 1 < n:
            out.append(text[i : i + 2])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _split_header(text: str) -> tuple[str, str]:
    pseudo = text.startswith(":")  # an HTTP/2 pseudo-header (:authority: h)
    name, sep, value = text[pseudo:].partition(":")
    name = ":" * pseudo + name
    if not sep or not name.strip(":").strip():
        raise UsageError(f"--curl: invalid header '{text}': expected 'Name: value'")
    return name.strip(), value.strip()


def parse_curl(text: str) -> BrowserRequest:
    """A "Copy as cURL" command (bash quoting) -> the request; UsageError if it is not one."""
    try:
        words = shlex.split(_to_posix(text.strip()))
    except ValueError as exc:
        raise UsageError(f"--curl: cannot parse the command: {exc}") from None
    if not words or words[0].rsplit("/", 1)[-1] not in ("curl", "curl.exe"):
        raise UsageError("--curl: not a curl command (expected: curl 'wss://…' -H "
                         "'Name: value' …, as a browser's \"Copy as cURL\" gives)")
    url: str | None = None
    headers: list[tuple[str, str]] = []
    notes: list[str] = []
    words = words[1:]
    i = 0

    def value_of(option: str) -> str:
        nonlocal i
        if i + 1 >= len(words):
            raise UsageError(f"--curl: {option} needs a value")
        i += 1
        return words[i]

    while i < len(words):
        word = words[i]
        if word in ("-H", "--header"):
            headers.append(_split_header(value_of(word)))
        elif word.startswith("--header="):
            headers.append(_split_header(word.partition("=")[2]))
        elif word.startswith("-H") and len(word) > 2:
            headers.append(_split_header(word[2:]))
        elif word in ("-b", "--cookie"):
            cookie = value_of(word)
            if "=" not in cookie:
                raise UsageError(f"--curl: {word} {cookie}: a cookie file is not read; "
                                 "give the cookies (name=value; …)")
            headers.append(("Cookie", cookie))
        elif word in ("-A", "--user-agent"):
            headers.append(("User-Agent", value_of(word)))
        elif word in ("-e", "--referer"):
            headers.append(("Referer", value_of(word)))
        elif word == "--url":
            url = value_of(word)
        elif word in _FLAGS_IGNORED:
            pass
        elif word in _FLAGS_NOTED:
            notes.append(f"--curl: {word} is not applied; give {_FLAGS_NOTED[word]} to "
                         "wstool if you mean it")
        elif word.startswith("-") and word != "-":
            raise UsageError(f"--curl: curl option {word} is not supported (only the URL, "
                             "-H/--header, -b/--cookie, -A, -e and --compressed are read)")
        elif url is None:
            url = word
        else:
            raise UsageError(f"--curl: two URLs ({url}, {word}); give one")
        i += 1
    if url is None:
        raise UsageError("--curl: no URL in the curl command")
    return sort_headers(url, headers, notes=tuple(notes))


def har_request(path: str, *, socket_number: int | None) -> tuple[BrowserRequest, list[str]]:
    """``connect --har FILE [--socket N]``: the handshake request of a HAR entry."""
    from wstool.client.recording import har_sockets, pick_har_socket, read_json_file

    har, _text = read_json_file(path)
    if har is None:
        raise UsageError(f"--har {path}: not a HAR file (not JSON)")
    socket, notices = pick_har_socket(path, har_sockets(path, har), number=socket_number,
                                      url=None)
    request = socket.entry.get("request") or {}
    headers = [(str(h.get("name", "")), str(h.get("value", "")))
               for h in request.get("headers", []) if isinstance(h, dict) and h.get("name")]
    if not socket.url:
        raise UsageError(f"--har {path}: socket {socket.number} has no request URL")
    return sort_headers(socket.url, headers), notices
