"""The database's TLS material: a certificate authority per platform, and the server certificate it signs.

Pure functions over PEM text and a clock (no cluster access): the platform's pass keeps the CA and the server
certificate in two Secrets, as CloudNativePG does (the CA's key only in the operator's, never mounted by a pod),
and asks here whether what it finds is still good. A server certificate is reissued when it no longer names the
database's hosts, is not signed by the platform's CA, cannot be read, or has less than a third of its life left;
the CA when it cannot be read or has less than a year left (clients then trust both until the old one expires).

ECDSA P-256 keys: fast to make, and accepted by PostgreSQL, libpq and asyncpg alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = timedelta(days=3650)
CA_RENEW_BEFORE = timedelta(days=365)
SERVER_VALIDITY = timedelta(days=365)
SERVER_RENEW_BEFORE = SERVER_VALIDITY / 3
# Backdated so that a client whose clock runs a little behind the operator's accepts a fresh certificate.
CLOCK_SKEW = timedelta(minutes=5)
# Stored material is read back from a Secret anyone with write access to it could fill: bounded before parsing.
PEM_MAX = 64 * 1024


@dataclass(frozen=True, slots=True)
class KeyPair:
    cert_pem: str
    key_pem: str = field(repr=False)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def issue_ca(common_name: str, now: datetime) -> KeyPair:
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(_cert_pem(cert), _key_pem(key))


def issue_server(ca: KeyPair, dns_names: Sequence[str], now: datetime) -> KeyPair:
    """A server certificate for `dns_names` (the first is its common name), signed by `ca`."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.encode())
    ca_key = serialization.load_pem_private_key(ca.key_pem.encode(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = _key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(min(now + SERVER_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name) for name in dns_names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return KeyPair(_cert_pem(cert), _key_pem(key))


def _load(cert_pem: str | None) -> x509.Certificate | None:
    if not cert_pem or len(cert_pem) > PEM_MAX:
        return None
    try:
        return x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError:
        return None


def _key_matches(cert: x509.Certificate, key_pem: str | None) -> bool:
    if not key_pem or len(key_pem) > PEM_MAX:
        return False
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        return False
    return key.public_key() == cert.public_key()


def _life_left(cert: x509.Certificate, now: datetime) -> timedelta:
    return cert.not_valid_after_utc - now


def usable_ca(pair: KeyPair | None, now: datetime) -> bool:
    """A CA the platform keeps using: readable, its key its own, a CA, with more than CA_RENEW_BEFORE to live."""
    cert = _load(pair.cert_pem if pair else None)
    if pair is None or cert is None or not _key_matches(cert, pair.key_pem):
        return False
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False
    return is_ca and _life_left(cert, now) > CA_RENEW_BEFORE


def usable_server(pair: KeyPair | None, ca_cert_pem: str, dns_names: Sequence[str], now: datetime) -> bool:
    """A server certificate the database keeps serving: readable, its key its own, signed by the CA, naming
    exactly `dns_names`, with more than SERVER_RENEW_BEFORE to live."""
    cert, ca_cert = _load(pair.cert_pem if pair else None), _load(ca_cert_pem)
    if pair is None or cert is None or ca_cert is None or not _key_matches(cert, pair.key_pem):
        return False
    try:
        cert.verify_directly_issued_by(ca_cert)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    return (
        sorted(names.get_values_for_type(x509.DNSName)) == sorted(dns_names)
        and _life_left(cert, now) > SERVER_RENEW_BEFORE
    )


def trusted_bundle(ca_cert_pem: str, previous_bundle: str | None, now: datetime) -> str:
    """What clients trust: the current CA, and any earlier CA of the bundle that has not expired (a server
    certificate it signed may still be served until the database restarts on the new one)."""
    kept = [ca_cert_pem.strip()]
    for block in _pem_blocks(previous_bundle or ""):
        cert = _load(block)
        if cert is not None and block.strip() not in kept and cert.not_valid_after_utc > now:
            kept.append(block.strip())
    return "\n".join(kept) + "\n"


def _pem_blocks(text: str) -> list[str]:
    if len(text) > PEM_MAX:
        return []
    end = "-----END CERTIFICATE-----"
    return [part.strip() + "\n" + end for part in text.split(end) if "-----BEGIN CERTIFICATE-----" in part]


def not_after(cert_pem: str) -> datetime | None:
    cert = _load(cert_pem)
    return cert.not_valid_after_utc if cert is not None else None
