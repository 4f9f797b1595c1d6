"""The database's TLS material, kept by the platform's pass: a CA per platform and the server certificate it
signs (pki.py decides what is still good), in the two Secrets of specs/tls.py.

Each pass reads both Secrets. A CA that cannot be read, is not its key's, or has less than a year to live is
replaced; a server certificate that does not name the database's hosts, was not signed by the current CA, or has
less than a third of its life left is reissued. Clients trust the current CA and, until it expires, the one before
it (a database may serve the old CA's certificate until it restarts). A Secret is written only when its content
changes; the database's pod template carries a digest of what it serves, so a new certificate restarts it.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from taskplatform.operator import pki
from taskplatform.operator.conditions import Event, EventReason
from taskplatform.operator.kinds import SECRET, Manifest
from taskplatform.operator.kube import Kube
from taskplatform.operator.specs.common import Owner
from taskplatform.operator.specs.names import Names
from taskplatform.operator.specs.tls import (
    CA_CERT_KEY,
    CA_KEY_KEY,
    TLS_CERT_KEY,
    TLS_KEY_KEY,
    DatabaseTls,
    ca_secret,
    database_hosts,
    server_secret,
)


def _decoded(secret: Manifest | None, key: str) -> str | None:
    """A key of a Secret as text; None when missing or not text (a hand-edited Secret: it is reissued)."""
    value = ((secret or {}).get("data") or {}).get(key)
    if not value or len(value) > 2 * pki.PEM_MAX:
        return None
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def _pair(secret: Manifest | None, cert_key: str, key_key: str) -> pki.KeyPair | None:
    cert, key = _decoded(secret, cert_key), _decoded(secret, key_key)
    return pki.KeyPair(cert, key) if cert and key else None


def _write(kube: Kube, existing: Manifest | None, manifest: Manifest) -> bool:
    """Create or update the Secret when its data differs; whether it was written."""
    if existing is not None and (existing.get("data") or {}) == manifest["data"]:
        return False
    kube.apply(manifest)
    return True


def ensure_database_tls(kube: Kube, owner: Owner, events: list[Event], now: datetime) -> DatabaseTls:
    names = Names(owner.name)
    ca_existing = kube.get(SECRET, owner.namespace, names.database_ca)
    tls_existing = kube.get(SECRET, owner.namespace, names.database_tls)

    ca = _pair(ca_existing, CA_CERT_KEY, CA_KEY_KEY)
    if ca is None or not pki.usable_ca(ca, now):
        renewed = ca is not None
        ca = pki.issue_ca(f"taskplatform {owner.namespace}/{owner.name} database CA", now)
        _write(kube, ca_existing, ca_secret(owner, ca))
        what = "renewed" if renewed else "issued"
        events.append(Event("Normal", EventReason.DATABASE_CA_ISSUED, f"{SECRET.named(names.database_ca)} {what}"))

    hosts = database_hosts(owner)
    server = _pair(tls_existing, TLS_CERT_KEY, TLS_KEY_KEY)
    if server is None or not pki.usable_server(server, ca.cert_pem, hosts, now):
        server = pki.issue_server(ca, hosts, now)
        expiry = pki.not_after(server.cert_pem)
        message = f"{SECRET.named(names.database_tls)}: a server certificate until {expiry:%Y-%m-%d}"
        events.append(Event("Normal", EventReason.DATABASE_CERTIFICATE_ISSUED, message))
    tls = DatabaseTls(ca, server, pki.trusted_bundle(ca.cert_pem, _decoded(tls_existing, CA_CERT_KEY), now))
    _write(kube, tls_existing, server_secret(owner, tls))
    return tls
