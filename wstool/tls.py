"""SSL contexts from TLS options (client side; the servers add theirs here too)."""

from __future__ import annotations

import ssl

from wstool.config import TLSConfig
from wstool.errors import UsageError, WstoolError


def _load_failure(flag: str, path: str, exc: Exception) -> WstoolError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return WstoolError(f"cannot read {flag} {path}: {reason}")


def client_context(tls: TLSConfig) -> ssl.SSLContext:
    """A verifying client context; ``insecure`` turns verification off."""
    if tls.keyfile and not tls.certfile:
        raise UsageError("--key needs --cert (the client certificate it belongs to)")
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if tls.cafile:
        try:
            context.load_verify_locations(cafile=tls.cafile)
        except (OSError, ssl.SSLError) as exc:
            raise _load_failure("--cacert", tls.cafile, exc) from None
    if tls.certfile:
        try:
            context.load_cert_chain(tls.certfile, tls.keyfile)
        except ssl.SSLError as exc:
            # --cert alone is fine for a combined PEM (certificate + key);
            # only when the key is missing do we insist on --key.
            if not tls.keyfile:
                raise UsageError(
                    f"--cert {tls.certfile} holds no private key: give it with --key FILE"
                ) from None
            raise _load_failure("--cert/--key", tls.certfile, exc) from None
        except OSError as exc:
            raise _load_failure("--cert/--key", tls.certfile, exc) from None
    if tls.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def server_context(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise _load_failure("--cert/--key", certfile, exc) from None
    return context
