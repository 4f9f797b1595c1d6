"""The database's CA and server certificate (operator/pki.py): what is kept, what is reissued, and that a client
verifying the full chain and the host name (sslmode=verify-full) accepts what is issued."""

from __future__ import annotations

import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from taskplatform.operator import pki

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
NAMES = ["demo-db", "demo-db.shop.svc", "demo-db-0.demo-db-headless.shop.svc"]


@pytest.fixture(scope="module")
def ca() -> pki.KeyPair:
    return pki.issue_ca("taskplatform shop/demo", NOW)


def handshake(tmp_path: Path, server: pki.KeyPair, bundle: str, host: str) -> None:
    """A TLS handshake over a socket pair: the server presents `server`, the client trusts `bundle` only and
    checks that the certificate names `host`, as libpq's verify-full does."""
    (tmp_path / "tls.crt").write_text(server.cert_pem)
    (tmp_path / "tls.key").write_text(server.key_pem)
    (tmp_path / "ca.crt").write_text(bundle)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    client_context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    left, right = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server_context.wrap_socket(right, server_side=True) as tls:
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_context.wrap_socket(left, server_hostname=host) as tls:
            assert tls.recv(2) == b"ok"
    finally:
        left.close()
        thread.join(5)


def test_a_client_verifying_the_chain_and_the_host_name_accepts_the_server(tmp_path: Path, ca: pki.KeyPair) -> None:
    server = pki.issue_server(ca, NAMES, datetime.now(UTC))
    for host in NAMES:
        handshake(tmp_path, server, ca.cert_pem, host)
    with pytest.raises(ssl.SSLCertVerificationError, match="match"):
        handshake(tmp_path, server, ca.cert_pem, "demo-db.other.svc")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(tmp_path, server, pki.issue_ca("someone else", NOW).cert_pem, NAMES[0])


def test_a_fresh_pair_is_kept_and_anything_wrong_is_reissued(ca: pki.KeyPair) -> None:
    server = pki.issue_server(ca, NAMES, NOW)
    assert pki.usable_ca(ca, NOW)
    assert pki.usable_server(server, ca.cert_pem, NAMES, NOW)
    assert pki.usable_server(server, ca.cert_pem, list(reversed(NAMES)), NOW)  # the order of the names is no matter
    other_ca = pki.issue_ca("another platform", NOW)
    assert not pki.usable_server(server, other_ca.cert_pem, NAMES, NOW)  # signed by another CA
    assert not pki.usable_server(server, ca.cert_pem, [*NAMES, "demo-db.shop.svc.cluster.local"], NOW)
    assert not pki.usable_server(server, ca.cert_pem, NAMES[:1], NOW)
    foreign_key = pki.issue_server(ca, NAMES, NOW).key_pem
    assert not pki.usable_server(pki.KeyPair(server.cert_pem, foreign_key), ca.cert_pem, NAMES, NOW)
    assert not pki.usable_ca(pki.KeyPair(ca.cert_pem, other_ca.key_pem), NOW)
    assert not pki.usable_ca(pki.KeyPair(server.cert_pem, server.key_pem), NOW)  # not a CA
    for garbage in (
        "",
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
        "x" * (pki.PEM_MAX + 1),
    ):
        assert not pki.usable_server(pki.KeyPair(garbage, server.key_pem), ca.cert_pem, NAMES, NOW)
        assert not pki.usable_server(pki.KeyPair(server.cert_pem, garbage), ca.cert_pem, NAMES, NOW)
        assert not pki.usable_ca(pki.KeyPair(garbage, ca.key_pem), NOW)
    assert not pki.usable_server(None, ca.cert_pem, NAMES, NOW)
    assert not pki.usable_ca(None, NOW)


def test_certificates_are_renewed_well_before_they_expire(ca: pki.KeyPair) -> None:
    server = pki.issue_server(ca, NAMES, NOW)
    expiry = pki.not_after(server.cert_pem)
    assert expiry is not None and expiry - NOW == pki.SERVER_VALIDITY
    renewal = expiry - pki.SERVER_RENEW_BEFORE
    assert pki.usable_server(server, ca.cert_pem, NAMES, renewal - timedelta(minutes=1))
    assert not pki.usable_server(server, ca.cert_pem, NAMES, renewal + timedelta(minutes=1))
    ca_expiry = pki.not_after(ca.cert_pem)
    assert ca_expiry is not None
    assert pki.usable_ca(ca, ca_expiry - pki.CA_RENEW_BEFORE - timedelta(minutes=1))
    assert not pki.usable_ca(ca, ca_expiry - pki.CA_RENEW_BEFORE + timedelta(minutes=1))
    # A server certificate never outlives its CA.
    late = ca_expiry - timedelta(days=30)
    assert pki.not_after(pki.issue_server(ca, NAMES, late).cert_pem) == ca_expiry


def test_clients_trust_the_new_ca_and_the_old_one_until_it_expires(tmp_path: Path, ca: pki.KeyPair) -> None:
    now = datetime.now(UTC)  # the handshakes below check validity against the real clock
    successor = pki.issue_ca("taskplatform shop/demo", now)
    bundle = pki.trusted_bundle(successor.cert_pem, ca.cert_pem, now)
    assert bundle.count("BEGIN CERTIFICATE") == 2
    assert pki.trusted_bundle(successor.cert_pem, bundle, now) == bundle  # no duplicates
    # A database still serving the old CA's certificate is trusted meanwhile, and so is one on the new CA.
    handshake(tmp_path, pki.issue_server(ca, NAMES, now), bundle, NAMES[0])
    handshake(tmp_path, pki.issue_server(successor, NAMES, now), bundle, NAMES[0])
    expired = NOW + pki.CA_VALIDITY + timedelta(days=1)  # the old CA's end; the successor lives on
    assert pki.trusted_bundle(successor.cert_pem, bundle, expired).count("BEGIN CERTIFICATE") == 1
    assert pki.trusted_bundle(successor.cert_pem, "garbage", NOW) == successor.cert_pem.strip() + "\n"
