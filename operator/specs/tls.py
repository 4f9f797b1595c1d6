"""TLS between the database and its clients: the Secrets that hold the platform's certificate authority and the
database's server certificate, how the database pod mounts its certificate, and how every client pod trusts it.

`<platform>-db-ca` holds the CA's certificate and key: only the operator reads it (certificates.py issues the
server certificate with it); no pod mounts it. `<platform>-db-tls` holds the server certificate and key (the
database pod mounts those two, readable by its group only, as PostgreSQL requires of a key file owned by root) and
the CA bundle clients trust (`ca.crt`: the current CA, and the one before it until it expires). Each client pod
mounts only `ca.crt` of it and connects with `sslmode=verify-full` (PGSSLMODE, PGSSLROOTCERT: libpq, psycopg2 and
asyncpg all read them), so it checks both the chain and that the certificate names the host it asked for.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from taskplatform.operator.kinds import SECRET, Manifest
from taskplatform.operator.pki import KeyPair
from taskplatform.operator.specs.common import Owner, metadata
from taskplatform.operator.specs.names import Names

TLS_COMPONENT = "database-tls"
CA_CERT_KEY, CA_KEY_KEY = "ca.crt", "ca.key"
TLS_CERT_KEY, TLS_KEY_KEY = "tls.crt", "tls.key"
# In the database container: the server's certificate and key.
SERVER_TLS_DIR = "/etc/taskplatform/tls"
SERVER_CERT_FILE, SERVER_KEY_FILE = f"{SERVER_TLS_DIR}/{TLS_CERT_KEY}", f"{SERVER_TLS_DIR}/{TLS_KEY_KEY}"
# In every client container: the CA bundle, and nothing else of the Secret.
CLIENT_CA_DIR = "/etc/taskplatform/db-ca"
CLIENT_CA_FILE = f"{CLIENT_CA_DIR}/{CA_CERT_KEY}"
SERVER_VOLUME, CLIENT_VOLUME = "tls", "db-ca"
# On the database's pod template: a digest of the certificate it serves, so a renewed one restarts it (PostgreSQL
# reads its certificate at start).
TLS_ANNOTATION = "taskplatform.io/tls-digest"
CLIENT_SSL_MODE = "verify-full"


def database_hosts(owner: Owner) -> list[str]:
    """Every name a client may reach the database by: the ClusterIP Service (the roles' URLs use
    `<db>.<namespace>.svc`) and its pod through the headless Service (the backup and restore Jobs' PGHOST), each
    short, with its namespace, and with `.svc`. The server certificate names exactly these."""
    names = Names(owner.name)
    hosts = []
    for host in (names.database, names.database_pod_host):
        hosts += [host, f"{host}.{owner.namespace}", f"{host}.{owner.namespace}.svc"]
    return hosts


@dataclass(frozen=True, slots=True)
class DatabaseTls:
    """What the platform's pass keeps in the two Secrets (certificates.py decides when to reissue)."""

    ca: KeyPair
    server: KeyPair
    trusted: str  # the CA bundle clients trust

    @property
    def digest(self) -> str:
        return hashlib.sha256((self.server.cert_pem + self.trusted).encode()).hexdigest()[:16]


def _data(values: dict[str, str]) -> dict[str, str]:
    return {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}


def ca_secret(owner: Owner, ca: KeyPair) -> Manifest:
    return {
        **SECRET.type_meta(),
        "metadata": metadata(owner, Names(owner.name).database_ca, TLS_COMPONENT),
        "type": "Opaque",
        "data": _data({CA_CERT_KEY: ca.cert_pem, CA_KEY_KEY: ca.key_pem}),
    }


def server_secret(owner: Owner, tls: DatabaseTls) -> Manifest:
    return {
        **SECRET.type_meta(),
        "metadata": metadata(owner, Names(owner.name).database_tls, TLS_COMPONENT),
        "type": "kubernetes.io/tls",
        "data": _data({TLS_CERT_KEY: tls.server.cert_pem, TLS_KEY_KEY: tls.server.key_pem, CA_CERT_KEY: tls.trusted}),
    }


def server_volume(platform: str) -> dict[str, Any]:
    """The certificate and key for the database container: owned by root and readable by the pod's group (its
    fsGroup, PostgreSQL's), which PostgreSQL accepts for a key file (mode 0640 at most when owned by root)."""
    items = [{"key": key, "path": key} for key in (TLS_CERT_KEY, TLS_KEY_KEY)]
    secret = {"secretName": Names(platform).database_tls, "items": items, "defaultMode": 0o640}
    return {"name": SERVER_VOLUME, "secret": secret}


SERVER_MOUNT = {"name": SERVER_VOLUME, "mountPath": SERVER_TLS_DIR, "readOnly": True}


def client_volume(platform: str) -> dict[str, Any]:
    """The CA bundle, alone, for a client container."""
    items = [{"key": CA_CERT_KEY, "path": CA_CERT_KEY}]
    return {"name": CLIENT_VOLUME, "secret": {"secretName": Names(platform).database_tls, "items": items}}


CLIENT_MOUNT = {"name": CLIENT_VOLUME, "mountPath": CLIENT_CA_DIR, "readOnly": True}
# How every client connects: TLS, the chain verified against the platform's CA, the host name checked.
CLIENT_ENV = [
    {"name": "PGSSLMODE", "value": CLIENT_SSL_MODE},
    {"name": "PGSSLROOTCERT", "value": CLIENT_CA_FILE},
]
