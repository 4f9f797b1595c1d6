"""The names other children refer to, kept in one thin place: the credentials Secret (every workload reads it),
the database's Services, pod and volume claim (its clients connect there: the Secret's URLs, the backup and restore
Jobs; operator/storage.py grows the claim), the database's port and name, and the API's name (its Deployment,
Service, disruption budget and autoscaler share it; the status' endpoint). Both the credentials Secret and the
database need the other's names, so neither module could hold them without importing the other.

A name only its own child and its own pass use stays in that child's module (the Jobs', the backup volume's).
"""

from __future__ import annotations

from dataclasses import dataclass

DB_PORT = 5432
DB_NAME = "taskplatform"
DATA_VOLUME = "data"  # the StatefulSet's volumeClaimTemplate


@dataclass(frozen=True, slots=True)
class Names:
    platform: str

    @property
    def secret(self) -> str:
        return f"{self.platform}-credentials"

    @property
    def database(self) -> str:
        return f"{self.platform}-db"

    @property
    def database_headless(self) -> str:
        return f"{self.platform}-db-headless"

    @property
    def api(self) -> str:
        return f"{self.platform}-api"

    @property
    def service_account(self) -> str:
        """The ServiceAccount every pod of the platform runs as (serviceaccount.py): the platform's own name."""
        return self.platform

    @property
    def database_ca(self) -> str:
        """The database's certificate authority (its key): the operator's alone, no pod mounts it (tls.py)."""
        return f"{self.platform}-db-ca"

    @property
    def database_tls(self) -> str:
        """The database's server certificate and key, and the CA bundle its clients trust (tls.py)."""
        return f"{self.platform}-db-tls"

    @property
    def database_config(self) -> str:
        """PostgreSQL's client authentication rules (database.py)."""
        return f"{self.platform}-db-config"

    @property
    def database_pod(self) -> str:
        """The StatefulSet's one pod."""
        return f"{self.database}-0"

    @property
    def database_pod_host(self) -> str:
        """The database pod's own DNS name (through the headless Service), resolvable as soon as the pod has an
        address: for a client that must not wait for the pod's readiness and the Service's routing."""
        return f"{self.database_pod}.{self.database_headless}"

    @property
    def database_claim(self) -> str:
        """The volume claim the StatefulSet controller makes for its one pod."""
        return f"{DATA_VOLUME}-{self.database_pod}"
