"""SSL contexts from TLS options (client side; the servers add theirs here too)."""

from __future__ import annotations

import ssl
import time

from wstool.config import KEY_PASSWORD_ENV, TLSConfig
from wstool.errors import UsageError, WstoolError


def _load_failure(flag: str, path: str, exc: Exception) -> WstoolError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return WstoolError(f"cannot read {flag} {path}: {reason}")


def key_is_encrypted(path: str) -> bool:
    """Whether a PEM file holds an encrypted private key (PKCS#8 or OpenSSL's own)."""
    try:
        with open(path, "rb") as file:
            text = file.read(1 << 20)
    except OSError:
        return False  # loading it reports the error
    return b"ENCRYPTED PRIVATE KEY" in text or b"Proc-Type: 4,ENCRYPTED" in text


class _PassPhrase:
    """``load_cert_chain``'s password callback, called only for an encrypted key.

    Without one OpenSSL asks on the terminal itself ("Enter PEM pass phrase:"), even
    in a pipe, and then fails with "Invalid argument".
    """

    def __init__(self, password: str | None, key_path: str) -> None:
        self.password = password
        self.key_path = key_path
        self.asked = False

    def __call__(self) -> str:
        self.asked = True
        if self.password is None:
            raise UsageError(f"--key {self.key_path} is encrypted: give its pass phrase in "
                             f"{KEY_PASSWORD_ENV} or with --key-password")
        return self.password


def _load_cert_chain(context: ssl.SSLContext, certfile: str, keyfile: str | None,
                     password: str | None) -> None:
    pass_phrase = _PassPhrase(password, keyfile or certfile)
    try:
        context.load_cert_chain(certfile, keyfile, password=pass_phrase)
    except ssl.SSLError as exc:
        if pass_phrase.asked:
            raise WstoolError(f"cannot read --key {pass_phrase.key_path}: "
                              "wrong pass phrase") from None
        # --cert alone is fine for a combined PEM (certificate + key);
        # only when the key is missing do we insist on --key.
        if not keyfile:
            raise UsageError(
                f"--cert {certfile} holds no private key: give it with --key FILE"
            ) from None
        raise _load_failure("--cert/--key", certfile, exc) from None
    except OSError as exc:
        raise _load_failure("--cert/--key", certfile, exc) from None


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
        _load_cert_chain(context, tls.certfile, tls.keyfile, tls.key_password)
    if tls.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.keylog_file:
        # NSS key log format, for Wireshark (README "Decrypting wss:// in Wireshark");
        # Python's ssl also honours $SSLKEYLOGFILE by itself.
        try:
            context.keylog_filename = tls.keylog_file
        except OSError as exc:
            raise WstoolError(f"cannot write --keylog {tls.keylog_file}: "
                              f"{exc.strerror or exc}") from None
    return context


# -v's "* TLS ..." and "* server certificate: ..." lines (issue 10), from the
# connection's SSLObject. Remote text: the caller escapes it before display.

_NAME_KEYS = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
              "countryName": "C", "stateOrProvinceName": "ST", "localityName": "L",
              "emailAddress": "emailAddress"}
_SAN_KEYS = {"IP Address": "IP"}


def tls_summary(ssl_object: ssl.SSLObject) -> str:
    """``TLS TLSv1.3, cipher TLS_AES_256_GCM_SHA384, ALPN none``."""
    cipher = ssl_object.cipher()
    alpn = ssl_object.selected_alpn_protocol()
    return (f"TLS {ssl_object.version() or '?'}, cipher {cipher[0] if cipher else '?'}, "
            f"ALPN {alpn or 'none'}")


def _name(rdns: object) -> str:
    parts = []
    for rdn in rdns if isinstance(rdns, tuple) else ():
        for key, value in rdn:
            parts.append(f"{_NAME_KEYS.get(key, key)}={value}")
    return ", ".join(parts) or "(empty)"


def certificate_summary(ssl_object: ssl.SSLObject) -> str:
    """``server certificate: subject CN=localhost; issuer O=...; SAN DNS:localhost,
    IP:127.0.0.1; expires 2027-03-01 00:00:00 UTC``. Python decodes the certificate
    only once verified: with -k it says so and gives the SHA-256 fingerprint."""
    cert = ssl_object.getpeercert()
    if not cert:
        der = ssl_object.getpeercert(binary_form=True)
        if not der:
            return "server certificate: none"
        import hashlib

        digest = hashlib.sha256(der).hexdigest().upper()
        fingerprint = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
        return f"server certificate: not verified (-k/--insecure); SHA-256 {fingerprint}"
    parts = [f"subject {_name(cert.get('subject'))}", f"issuer {_name(cert.get('issuer'))}"]
    san = cert.get("subjectAltName")
    if isinstance(san, tuple) and san:
        parts.append("SAN " + ", ".join(f"{_SAN_KEYS.get(str(kind), kind)}:{value}"
                                        for kind, value in san))
    not_after = cert.get("notAfter")
    if isinstance(not_after, str):
        try:
            expires = time.gmtime(ssl.cert_time_to_seconds(not_after))
            parts.append("expires " + time.strftime("%Y-%m-%d %H:%M:%S UTC", expires))
        except ValueError:
            parts.append(f"expires {not_after}")
    return "server certificate: " + "; ".join(parts)


def server_context(certfile: str, keyfile: str | None,
                   password: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _load_cert_chain(context, certfile, keyfile, password)
    return context


# serve-echo / listen --self-signed (issue 4). Generating a key and an X.509
# certificate needs real crypto; the `cryptography` package (optional extra
# `wstool[tls]`) provides it. The stdlib ssl module cannot create certificates.


def self_signed_certificate(directory: str) -> tuple[str, str, str]:
    """Write a throwaway certificate for localhost/127.0.0.1/::1 and its key.

    Returns ``(certfile, keyfile, sha256_fingerprint)``; the fingerprint is the
    colon-separated hex form browsers and ``openssl x509 -fingerprint`` show.
    """
    import datetime
    import ipaddress
    import os

    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        raise UsageError(
            "--self-signed needs the 'cryptography' package: pip install 'wstool[tls]' "
            "(or give --cert FILE --key FILE)"
        ) from None
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1")),
            ]),
            critical=False,
        )
        # A self-signed leaf that is also its own trust anchor (--cacert).
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile = os.path.join(directory, "cert.pem")
    keyfile = os.path.join(directory, "key.pem")
    with open(certfile, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ))
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    fingerprint = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    return certfile, keyfile, fingerprint
