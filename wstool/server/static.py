"""``--static DIR``: plain HTTP GET/HEAD requests answered from a directory (issue 16).

Pure and independent of the HTTP version: :func:`static_response` maps a method and
a request target to a :class:`StaticResponse` (status, headers, body), or ``None``
when the request is not one for static files (another method: the caller keeps its
426 page). ``server/core.py`` calls it for HTTP/1.1 requests that are not WebSocket
upgrades; an HTTP/2 stream can call it with ``:method`` and ``:path`` alike.

What is served, and what never is (websocketd's ``--staticdir`` model):

* the target's path is percent-decoded once and split on ``/``; empty and ``.``
  segments are dropped; a ``..`` segment (``..``, ``%2e%2e``, ``..%2f``), a NUL
  byte or a target that is not an origin-form path (``http://...``, ``*``) is
  refused (404 / 400) before the file system is touched;
* the path is then resolved (``os.path.realpath``, symlinks followed) and must
  still be inside DIR: a symlink that points out of DIR is 404, as if absent;
* only regular files are read (no FIFO, device or socket: reading one could
  block the server); a directory serves its ``index.html``, and a directory
  asked for without its trailing slash is redirected (301) to it, so the page's
  relative links work;
* content types come from :mod:`mimetypes` (``application/octet-stream``
  otherwise; text types get ``charset=utf-8``); HEAD gets the headers of GET
  with an empty body.

A file is read whole into memory (demo pages and their scripts); one larger than
``MAX_STATIC_FILE_BYTES`` is refused with 413 rather than buffered.
"""

from __future__ import annotations

import email.utils
import mimetypes
import os
import stat
import urllib.parse
from typing import NamedTuple

MAX_STATIC_FILE_BYTES = 64 * 1024 * 1024
INDEX_FILE = "index.html"

_REASONS = {
    200: "OK",
    301: "Moved Permanently",
    304: "Not Modified",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    413: "Content Too Large",
    500: "Internal Server Error",
}


class StaticResponse(NamedTuple):
    """What to answer: HTTP-version independent (no Connection or Date header)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def reason(self) -> str:
        return _REASONS.get(self.status, "")


def check_static_dir(path: str) -> str:
    """The absolute, resolved DIR; ValueError (with why) if it is not a readable directory."""
    real = os.path.realpath(path)
    if not os.path.exists(real):
        raise ValueError(f"{path}: no such directory")
    if not os.path.isdir(real):
        raise ValueError(f"{path}: not a directory")
    if not os.access(real, os.R_OK | os.X_OK):
        raise ValueError(f"{path}: permission denied")
    return real


def _text(status: int, text: str, *, head: bool) -> StaticResponse:
    body = text.encode()
    headers = (
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
    )
    return StaticResponse(status, headers, b"" if head else body)


def _content_type(path: str) -> str:
    guessed, encoding = mimetypes.guess_type(path, strict=False)
    if guessed is None or encoding is not None:
        # .gz, .bz2...: served as the bytes they are, not as a compressed page.
        return "application/octet-stream"
    if guessed.startswith("text/") or guessed in ("application/javascript", "image/svg+xml"):
        return f"{guessed}; charset=utf-8"
    return guessed


def static_response(
    root: str,
    method: str,
    target: str,
    headers: tuple[tuple[str, str], ...] = (),
) -> StaticResponse | None:
    """Answer ``method target`` from ``root`` (a directory from :func:`check_static_dir`).

    ``None``: not a static-file request (a method other than GET or HEAD). ``headers``
    are the request's (only ``If-Modified-Since`` is read).
    """
    if method not in ("GET", "HEAD"):
        return None
    head = method == "HEAD"
    raw_path = target.split("?", 1)[0].split("#", 1)[0]
    if not raw_path.startswith("/"):
        return _text(400, "400 Bad Request: not a path\n", head=head)
    try:
        decoded = urllib.parse.unquote(raw_path, errors="strict")
    except UnicodeDecodeError:
        return _text(400, "400 Bad Request: path is not UTF-8\n", head=head)
    if "\0" in decoded:
        return _text(400, "400 Bad Request: NUL in path\n", head=head)
    segments = [s for s in decoded.split("/") if s not in ("", ".")]
    if ".." in segments:
        return _text(404, "404 Not Found\n", head=head)
    candidate = os.path.join(root, *segments)
    real = os.path.realpath(candidate)
    if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
        return _text(404, "404 Not Found\n", head=head)  # a symlink out of DIR
    try:
        st = os.stat(real)
        if stat.S_ISDIR(st.st_mode):
            if not raw_path.endswith("/"):
                location = urllib.parse.quote(decoded.rstrip("/") + "/")
                query = target[len(raw_path):]
                return StaticResponse(
                    301,
                    (("Location", location + query), ("Content-Length", "0")),
                    b"",
                )
            real = os.path.join(real, INDEX_FILE)
            st = os.stat(real)
        if not stat.S_ISREG(st.st_mode):
            return _text(404, "404 Not Found\n", head=head)
        if st.st_size > MAX_STATIC_FILE_BYTES:
            return _text(413, f"413 Content Too Large: over {MAX_STATIC_FILE_BYTES} bytes\n",
                         head=head)
        last_modified = email.utils.formatdate(int(st.st_mtime), usegmt=True)
        since = next((v for k, v in headers if k.lower() == "if-modified-since"), None)
        if since is not None and _not_modified(since, int(st.st_mtime)):
            return StaticResponse(304, (("Last-Modified", last_modified),), b"")
        body = b""
        if not head:
            # O_NONBLOCK: if the file was swapped for a FIFO since the stat, the open
            # must not block the server.
            fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
            with os.fdopen(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    return _text(404, "404 Not Found\n", head=head)
                body = f.read(MAX_STATIC_FILE_BYTES + 1)
            size = len(body)
        else:
            size = st.st_size
    except FileNotFoundError:
        return _text(404, "404 Not Found\n", head=head)
    except PermissionError:
        return _text(403, "403 Forbidden\n", head=head)
    except (NotADirectoryError, IsADirectoryError):
        return _text(404, "404 Not Found\n", head=head)
    except OSError as exc:
        return _text(500, f"500 Internal Server Error: {exc.strerror or exc}\n", head=head)
    return StaticResponse(
        200,
        (
            ("Content-Type", _content_type(real)),
            ("Content-Length", str(size)),
            ("Last-Modified", last_modified),
            ("X-Content-Type-Options", "nosniff"),
        ),
        body,
    )


def _not_modified(since: str, mtime: int) -> bool:
    try:
        when = email.utils.parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    return int(when.timestamp()) >= mtime
