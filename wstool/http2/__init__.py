"""WebSockets over HTTP/2 (RFC 8441, issue 12): extended CONNECT on one h2 stream.

``rfc8441`` is the sans-I/O glue (header blocks, the translation to and from the
HTTP/1.1 handshake websockets' protocol expects, SETTINGS and frame descriptions);
``stream`` the asyncio side shared by client and server (an ``H2Endpoint`` protocol
over TCP/TLS and an ``H2StreamTransport`` per stream, under which websockets'
connection runs unchanged); ``client`` opens the connection and the stream for
``connect --http2``; ``probe`` and ``probe_report`` are ``wstool probe``.

Everything here imports ``h2`` (the optional extra ``wstool[http2]``) at import
time: import these modules only when HTTP/2 is asked for.
"""
