"""Typed models of the custom resources. The CRDs in crds/ are generated from these (crdgen.py), so the
schema the API server enforces, its defaults and descriptions, and what the operator reads are one source."""

from __future__ import annotations

import enum
import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, model_validator
from pydantic.alias_generators import to_camel

from taskplatform.migration import contract
from taskplatform.migration.read_order import DESCRIPTION as READ_ORDER_DESCRIPTION
from taskplatform.migration.read_order import ReadOrder

GROUP = "taskplatform.io"
VERSION = "v1alpha1"


class CRModel(BaseModel):
    # camelCase on the wire, as Kubernetes does; unknown fields are pruned by the API server anyway.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


# A Kubernetes byte quantity: binary (Ki…Ei) or decimal (k, M…E) suffixes. Not "K": the API server refuses it,
# and a child it refuses is a pass that fails where admission could have said no.
BYTES_QUANTITY = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"


class ResourceList(CRModel):
    cpu: str | None = Field(None, description="CPU quantity, e.g. 250m.", pattern=r"^[0-9]+(\.[0-9]+)?m?$")
    memory: str | None = Field(None, description="Memory quantity, e.g. 256Mi.", pattern=BYTES_QUANTITY)


class Resources(CRModel):
    requests: ResourceList = Field(default_factory=ResourceList, description="Minimum resources reserved.")
    limits: ResourceList = Field(default_factory=ResourceList, description="Maximum resources allowed.")


class Autoscaling(CRModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    # has(): the API server also checks rules against the schema's own `{}` defaults.
                    "rule": "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
                    "message": "minReplicas must be <= maxReplicas",
                }
            ]
        }
    )

    min_replicas: int = Field(1, ge=1, le=100, description="Fewest API replicas the autoscaler keeps.")
    max_replicas: int = Field(5, ge=1, le=100, description="Most API replicas the autoscaler starts.")
    target_cpu_utilization_percentage: int = Field(
        70, ge=10, le=100, description="Average CPU utilisation (percent of requests) the autoscaler aims for."
    )
    scale_down_stabilization_seconds: int = Field(
        300,
        ge=0,
        le=3600,
        description="How long the autoscaler waits, after the load falls, before it removes replicas (the "
        "HorizontalPodAutoscaler's scaleDown stabilization window; Kubernetes' default is 300).",
    )


class ServiceSpec(CRModel):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field("ClusterIP", description="Kubernetes Service type.")
    port: int = Field(80, ge=1, le=65535, description="Port the API Service listens on.")


# The API's settings the operator sets itself (specs/api.py), from the spec's own fields: a user's env entry may not
# replace them (a pool larger than the database was sized for, TLS to the database turned off).
OPERATOR_ENV = (
    "ENVIRONMENT", "DATABASE_URL", "JWT_SECRET", "JWT_ADDITIONAL_SECRETS", "ACCESS_TOKEN_TTL_S", "REFRESH_TOKEN_TTL_S",
    "METRICS_PORT", "API_DOCS", "TRUSTED_PROXIES", "WEB_CONCURRENCY", "DB_POOL_SIZE", "DB_MAX_OVERFLOW",
    "PGSSLMODE", "PGSSLROOTCERT",
)  # fmt: skip
ENV_NAME_MAX = 128
ENV_VALUE_MAX = 4096


def _not_operator_env(name: str) -> str:
    if name in OPERATOR_ENV:
        raise ValueError(f"{name} is set by the operator from the spec's own fields")
    return name


class EnvVar(CRModel):
    """An environment variable set on the API containers."""

    name: Annotated[str, AfterValidator(_not_operator_env)] = Field(
        description="Environment variable name; not one the operator sets from the spec itself "
        f"({', '.join(OPERATOR_ENV)}).",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        max_length=ENV_NAME_MAX,
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"!(self in {list(OPERATOR_ENV)})",
                    "messageExpression": "self + ' is set by the operator from the spec\\'s own fields'",
                }
            ]
        },
    )
    value: str = Field("", description="Its value.", max_length=ENV_VALUE_MAX)


class DatabasePool(CRModel):
    size: int = Field(10, ge=1, le=100, description="Connections each API process keeps open (DB_POOL_SIZE).")
    max_overflow: int = Field(
        10, ge=0, le=100, description="Connections each API process may open beyond them under load (DB_MAX_OVERFLOW)."
    )


# The longest address or CIDR: IPv6 with a dotted IPv4 tail (45 characters) and "/128".
TRUSTED_PROXY_MAX_LENGTH = 49
TRUSTED_PROXIES_MAX = 64
_PREFIX_LENGTH = re.compile(r"^[0-9]{1,3}$")


def _address_or_cidr(value: str) -> str:
    """What the API server's CEL `isIP(self) || isCIDR(self)` accepts (Go's netip), which the API's own parser
    also reads: no zone, no IPv4-mapped IPv6 address, a prefix length rather than a netmask."""
    address, slash, prefix = value.partition("/")
    try:
        parsed = ipaddress.ip_address(address)
        if slash:
            if not _PREFIX_LENGTH.match(prefix):
                raise ValueError("a CIDR's prefix is a length, such as /24")
            ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise ValueError(f"{value!r} is no IP address or CIDR: {exc}") from None
    if isinstance(parsed, ipaddress.IPv6Address) and (parsed.scope_id or parsed.ipv4_mapped):
        raise ValueError(f"{value!r}: zones and IPv4-mapped IPv6 addresses are not accepted")
    return value


TrustedProxy = Annotated[
    str,
    Field(
        description="An IP address (10.0.0.7) or CIDR (10.0.0.0/16, fd00::/64).",
        min_length=1,
        max_length=TRUSTED_PROXY_MAX_LENGTH,
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "isIP(self) || isCIDR(self)", "message": "must be an IP address or a CIDR"}
            ]
        },
    ),
    AfterValidator(_address_or_cidr),
]


# NetworkPolicy peers (networkpolicy.py): who may reach the API pods, who may scrape their metrics, where a
# DataMigration's source is. The same shapes as Kubernetes' NetworkPolicyPeer, bounded so that the CRD refuses what
# the API server would refuse in the NetworkPolicy (a spec accepted here never fails the operator's apply).
NETWORK_PEERS_MAX = 16  # peers in one list
SELECTOR_TERMS_MAX = 16  # matchLabels entries, matchExpressions
SELECTOR_VALUES_MAX = 64  # values of one matchExpression
IP_BLOCK_EXCEPT_MAX = 16
# A label key: an optional DNS subdomain prefix (at most 253 characters) and `/`, then a name of at most 63.
LABEL_KEY_MAX_LENGTH = 253 + 1 + 63
LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
LABEL_VALUE_MAX_LENGTH = 63
_LABEL_KEY = re.compile(LABEL_KEY)
# The prefix's own bound, which the pattern cannot count (CEL: indexOf is -1 without a prefix).
_KEY_PREFIX_RULE = "indexOf('/') <= 253"


def _label_key(key: str) -> str:
    if len(key) > LABEL_KEY_MAX_LENGTH or not _LABEL_KEY.match(key) or key.find("/") > 253:
        raise ValueError(f"{key[:80]!r} is no label key (an optional DNS prefix and /, then a name of 1-63 characters)")
    return key


def _label_keys(labels: dict[str, str]) -> dict[str, str]:
    for key in labels:
        _label_key(key)
    return labels


LabelKey = Annotated[
    str,
    Field(
        description="A label key, e.g. app.kubernetes.io/name.",
        max_length=LABEL_KEY_MAX_LENGTH,
        pattern=LABEL_KEY,
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": f"self.{_KEY_PREFIX_RULE}", "message": "a label key's prefix has at most 253 characters"}
            ]
        },
    ),
    AfterValidator(_label_key),
]
LabelValue = Annotated[str, Field(description="A label value.", max_length=LABEL_VALUE_MAX_LENGTH, pattern=LABEL_VALUE)]


class LabelSelectorRequirement(CRModel):
    """A key and how its value must be: In or NotIn the values, or the key Exists or DoesNotExist."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.operator in ['In', 'NotIn'] ? size(self.values) > 0 : size(self.values) == 0",
                    "message": "values are required with In and NotIn, and not allowed with Exists and DoesNotExist",
                }
            ]
        }
    )

    key: LabelKey
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(description="How the key's value is matched.")
    values: list[LabelValue] = Field([], max_length=SELECTOR_VALUES_MAX, description="Values for In and NotIn.")

    @model_validator(mode="after")
    def _values_fit_the_operator(self) -> LabelSelectorRequirement:
        if (self.operator in ("In", "NotIn")) != bool(self.values):
            raise ValueError("values are required with In and NotIn, and not allowed with Exists and DoesNotExist")
        return self


class LabelSelector(CRModel):
    """A Kubernetes label selector; an empty one selects everything."""

    match_labels: Annotated[dict[str, LabelValue], AfterValidator(_label_keys)] = Field(
        {},
        max_length=SELECTOR_TERMS_MAX,
        description="Labels that must all be present with these values.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"self.all(k, size(k) <= {LABEL_KEY_MAX_LENGTH} && k.{_KEY_PREFIX_RULE} && "
                    f"k.matches(r'{LABEL_KEY}'))",
                    "message": "every key must be a label key (an optional DNS prefix and /, then a name of 1-63 "
                    "characters)",
                }
            ]
        },
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        [], max_length=SELECTOR_TERMS_MAX, description="Requirements that must all hold."
    )


# A CIDR as Go's netip reads it (CEL's isCIDR), without host bits: 10.0.0.0/8, not 10.1.2.3/8.
CIDR_MAX_LENGTH = TRUSTED_PROXY_MAX_LENGTH


def _cidr(value: str) -> str:
    if "/" not in value:
        raise ValueError(f"{value!r} is no CIDR: a CIDR has a prefix length, such as 10.0.0.0/8")
    _address_or_cidr(value)
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise ValueError(f"{value!r} has host bits set: use {ipaddress.ip_network(value, strict=False)}") from None
    return value


Cidr = Annotated[
    str,
    Field(
        description="A CIDR without host bits, e.g. 10.0.0.0/8 or fd00::/64.",
        min_length=1,
        max_length=CIDR_MAX_LENGTH,
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "isCIDR(self) && cidr(self) == cidr(self).masked()",
                    "message": "must be a CIDR without host bits, e.g. 10.0.0.0/8",
                }
            ]
        },
    ),
    AfterValidator(_cidr),
]


class IPBlock(CRModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!isCIDR(self.cidr) || self.except.all(e, !isCIDR(e) || (cidr(self.cidr).containsCIDR(e) "
                    "&& cidr(e).prefixLength() > cidr(self.cidr).prefixLength()))",
                    "message": "every except entry must be a strict subset of cidr",
                }
            ]
        }
    )

    cidr: Cidr
    except_: list[Cidr] = Field(
        [], alias="except", max_length=IP_BLOCK_EXCEPT_MAX, description="Parts of cidr left out."
    )

    @model_validator(mode="after")
    def _except_inside_cidr(self) -> IPBlock:
        network = ipaddress.ip_network(self.cidr)
        for entry in self.except_:
            inner = ipaddress.ip_network(entry)
            if inner.version != network.version or not inner.subnet_of(network) or inner == network:  # type: ignore[arg-type]
                raise ValueError(f"except entry {entry} is no strict subset of {self.cidr}")
        return self


class NetworkPeer(CRModel):
    # Pods (podSelector: of this namespace; with namespaceSelector: of the namespaces it selects), every pod of some
    # namespaces (namespaceSelector alone), or addresses (ipBlock alone: what is not a pod).
    """A Kubernetes NetworkPolicyPeer: podSelector and/or namespaceSelector, or ipBlock alone."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.ipBlock) ? !has(self.podSelector) && !has(self.namespaceSelector) : "
                    "has(self.podSelector) || has(self.namespaceSelector)",
                    "message": "set ipBlock alone, or podSelector and/or namespaceSelector",
                }
            ]
        }
    )

    pod_selector: LabelSelector | None = Field(
        None,
        description="Pods with these labels ({}: every pod), in this namespace or, with namespaceSelector, in the "
        "namespaces it selects.",
    )
    namespace_selector: LabelSelector | None = Field(
        None, description="Namespaces with these labels ({}: every namespace), e.g. kubernetes.io/metadata.name."
    )
    ip_block: IPBlock | None = Field(
        None, description="Addresses in this CIDR, for what is not a pod (a load balancer, a node, an outside service)."
    )

    @model_validator(mode="after")
    def _one_kind_of_peer(self) -> NetworkPeer:
        selectors = self.pod_selector is not None or self.namespace_selector is not None
        if (self.ip_block is not None) == selectors:
            raise ValueError("set ipBlock alone, or podSelector and/or namespaceSelector")
        return self


class ApiMetrics(CRModel):
    scrape_from: list[NetworkPeer] = Field(
        [],
        max_length=NETWORK_PEERS_MAX,
        description="Who may connect to the API pods' metrics port (9464, /metrics; the Service does not expose it), "
        "e.g. the Prometheus pods: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}, "
        "podSelector: {matchLabels: {app.kubernetes.io/name: prometheus}}}]. Empty: nobody.",
    )


class ApiSpec(CRModel):
    image: str = Field(
        "taskplatform-api:0.1.0", min_length=1, description="Container image of the API (also runs migrations)."
    )
    replicas: int = Field(
        2, ge=0, le=100, description="API replicas; ignored while autoscaling is set. `kubectl scale` edits this."
    )
    # Plain (not factory) defaults appear in the generated CRD, so the API server fills in the same values.
    resources: Resources = Field(
        Resources(requests=ResourceList(cpu="100m", memory="128Mi"), limits=ResourceList(memory="512Mi")),
        description="Resources of each API container.",
    )
    autoscaling: Autoscaling | None = Field(None, description="When set, a HorizontalPodAutoscaler owns replicas.")
    service: ServiceSpec = Field(default_factory=ServiceSpec, description="How the API is exposed.")
    workers: int = Field(
        1, ge=1, le=16, description="API server processes per pod (WEB_CONCURRENCY), each with its own pool."
    )
    database_pool: DatabasePool = Field(
        DatabasePool(),
        description="Each API process's database connection pool (sized against the database's "
        "maxConnections: see spec.database.maxConnections).",
    )
    env: list[EnvVar] = Field([], max_length=64, description="Extra environment variables for the API.")
    pod_annotations: dict[str, str] = Field(
        {}, description="Annotations for the API and schema-migration pods, e.g. prometheus.io/scrape."
    )
    docs: bool = Field(
        False,
        description="Serve the OpenAPI document and its pages (/openapi.json, /docs, /redoc) on the API's port "
        "(API_DOCS). Off by default: a public API need not publish its whole surface.",
    )
    trusted_proxies: list[TrustedProxy] = Field(
        [],
        max_length=TRUSTED_PROXIES_MAX,
        description="Addresses or CIDRs of the proxies in front of the API (an ingress controller's pods), given to "
        "it as TRUSTED_PROXIES: a request from one of them is attributed to the right-most X-Forwarded-For address "
        "that is not one of them (login throttling counts per client address). Empty: forwarded headers are "
        "ignored and a request counts against its own source address. List only proxies that overwrite or append "
        "to X-Forwarded-For; anything a client can reach directly lets it choose its address.",
    )
    ingress_from: list[NetworkPeer] = Field(
        [],
        max_length=NETWORK_PEERS_MAX,
        description="Who may connect to the API pods' http port (through the Service or directly), e.g. the ingress "
        "controller's namespace: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ingress-nginx}}}]. "
        "Empty: anyone, in the cluster or outside it. Enforced where the cluster's network plugin enforces "
        "NetworkPolicies (docs/operator.md).",
    )
    metrics: ApiMetrics = Field(default_factory=ApiMetrics, description="The API pods' Prometheus metrics.")


class StorageSpec(CRModel):
    # Transition rules: the API server checks them on every update (oldSelf is the stored object).
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.storageClassName) == has(oldSelf.storageClassName) && "
                    "(!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)",
                    "message": "spec.database.storage.storageClassName cannot change: the volume exists in its class; "
                    "back up and restore into a new TaskPlatform instead",
                },
            ]
        }
    )

    size: str = Field(
        "1Gi",
        description="Size of the database volume. It may grow (the volume is expanded in place where its "
        "StorageClass allows expansion); it cannot shrink.",
        pattern=BYTES_QUANTITY,
    )
    storage_class_name: str | None = Field(
        None, description="StorageClass of the volume; the cluster default if unset. Fixed once created."
    )


# An S3 bucket name (the rules every S3-compatible store accepts: 3-63 lowercase letters, digits, dots, dashes).
S3_BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
# host or host:port, no scheme: the scheme follows `tls`.
S3_ENDPOINT = r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$"
# Five cron fields (minute hour day-of-month month day-of-week) or a @macro; the operator parses it fully and
# reports one it cannot (BackupHealthy False, ScheduleInvalid).
CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
CRON = rf"^({'|'.join(CRON_MACROS)}|\S+( \S+){{4}})$"


class S3CredentialsRef(CRModel):
    name: str = Field(
        description="Secret in the same namespace with `access-key-id` and `secret-access-key` keys.", min_length=1
    )


_PORT_AFTER_COLON = "int(self.substring(self.indexOf(':') + 1))"


def _endpoint_port(endpoint: str) -> str:
    _, colon, port = endpoint.partition(":")
    if colon and not 1 <= int(port) <= 65535:
        raise ValueError(f"{endpoint!r}: a port is 1 to 65535")
    return endpoint


class S3Location(CRModel):
    endpoint: Annotated[str, AfterValidator(_endpoint_port)] = Field(
        description="Host or host:port of the S3-compatible service, without a scheme. The backup and restore Jobs "
        "may open connections to this port (without one: 443 with tls, else 80) and no other outside the cluster "
        "(their NetworkPolicy, docs/operator.md).",
        pattern=S3_ENDPOINT,
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"!self.contains(':') || ({_PORT_AFTER_COLON} >= 1 && {_PORT_AFTER_COLON} <= 65535)",
                    "message": "the port must be 1 to 65535",
                }
            ]
        },
    )
    bucket: str = Field(description="Bucket the dumps go to (it must exist).", pattern=S3_BUCKET)
    prefix: str = Field(
        "",
        description="Key prefix inside the bucket; each dump is `<prefix>/<namespace>/<platform>/<platform uid>/"
        "<backup>.dump` (docs/backup.md).",
        pattern=r"^([A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*)?$",
        max_length=256,
    )
    region: str = Field("us-east-1", description="Region used to sign requests.", min_length=1)
    credentials_secret_ref: S3CredentialsRef = Field(description="Where the access keys are.")
    tls: bool = Field(True, description="HTTPS to the endpoint. Turn off only for a store on a trusted network.")
    verify_tls: bool = Field(
        True, description="Verify the endpoint's certificate. Turning this off exposes the credentials and dumps."
    )

    @property
    def port(self) -> int:
        """The port the S3 client connects to: the endpoint's, else HTTPS's or HTTP's as `tls` says."""
        _, colon, port = self.endpoint.partition(":")
        return int(port) if colon else 443 if self.tls else 80


class BackupVolume(CRModel):
    size: str = Field("10Gi", description="Size of the backup volume `<platform>-backups`.", pattern=BYTES_QUANTITY)
    storage_class_name: str | None = Field(None, description="Its StorageClass; the cluster default if unset.")


# pg_dump's zlib level for backups: level 1 halves the dump's CPU time against pg_dump's default of 6, and the
# dump's compression is the backup's bottleneck (docs/benchmarks.md).
DEFAULT_COMPRESSION_LEVEL = 1


class BackupSpec(CRModel):
    """Where and when the database is dumped (TaskPlatformBackup resources record each dump)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "has(self.volume) != has(self.s3)", "message": "set exactly one destination: volume or s3"}
            ]
        }
    )

    schedule: str | None = Field(
        None,
        description="Cron schedule in UTC (e.g. `0 3 * * *`) of automatic backups; none when unset (on-demand "
        "TaskPlatformBackups only).",
        pattern=CRON,
    )
    retention: int = Field(
        7, ge=1, le=1000, description="How many completed backups to keep; older ones are deleted with their dumps."
    )
    volume: BackupVolume | None = Field(
        None,
        description="Keep dumps on a volume the operator creates, `<platform>-backups`. It outlives the "
        "TaskPlatform, so a new one can restore from it.",
    )
    s3: S3Location | None = Field(None, description="Keep dumps in an S3-compatible bucket.")
    compression_level: int = Field(
        DEFAULT_COMPRESSION_LEVEL,
        ge=0,
        le=9,
        description="zlib level of the dump (pg_dump `--compress`): 0 stores it uncompressed, 9 makes it smallest "
        "and slowest. The default, 1, dumps about twice as fast as pg_dump's own default (6) for a dump about 15% "
        "larger (docs/benchmarks.md); restoring takes the same time either way.",
    )


class VolumeDumpLocation(CRModel):
    claim_name: str = Field(description="The PersistentVolumeClaim holding the dump.", min_length=1)
    path: str = Field(
        description="Path of the dump inside the volume, e.g. `demo/demo-20260101030000.dump`.", pattern=r"^[^/].*$"
    )


class S3DumpLocation(S3Location):
    key: str = Field(description="Object key of the dump.", min_length=1)


# The most a dump from an s3 or volume source may have when restoreFrom.size is unset (a backup source's bound is
# its recorded size): the download's bound, from which its scratch volume is sized (specs/backup.py).
DEFAULT_RESTORE_SIZE = "1Gi"


class RestoreSource(CRModel):
    """The dump a new TaskPlatform starts from."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "(has(self.backup) ? 1 : 0) + (has(self.volume) ? 1 : 0) + (has(self.s3) ? 1 : 0) == 1",
                    "message": "set exactly one of backup, volume or s3",
                },
                {
                    "rule": "has(self.backup) || has(self.sha256) || "
                    "(has(self.allowUnverified) && self.allowUnverified)",
                    "message": "an s3 or volume source needs sha256, the checksum the dump had when it was taken: "
                    "it is verified before a byte of it is restored (allowUnverified: true restores it unverified, "
                    "which is dangerous)",
                },
                {"rule": "self == oldSelf", "message": "restoreFrom cannot change once set"},
            ]
        }
    )

    backup: str | None = Field(None, description="A completed TaskPlatformBackup in the same namespace.")
    volume: VolumeDumpLocation | None = Field(None, description="A dump file on a volume.")
    s3: S3DumpLocation | None = Field(None, description="A dump object in an S3-compatible bucket.")
    sha256: str | None = Field(
        None,
        description="Expected SHA-256 of the dump, as recorded when it was taken: required for a volume or s3 "
        "source (a backup source carries its own). The whole dump is verified before a byte of it is restored. The "
        "`.sha256` object written beside each dump is never used: whoever can replace the dump can replace it.",
        pattern=r"^[0-9a-f]{64}$",
    )
    size: str | None = Field(
        None,
        description="The most the dump of a volume or s3 source may have, e.g. 2Gi (a backup source's bound is its "
        f"recorded size); {DEFAULT_RESTORE_SIZE} when unset. A larger dump is refused before it is downloaded; the "
        "restore's scratch volume is sized from it.",
        pattern=BYTES_QUANTITY,
    )
    allow_unverified: bool = Field(
        False,
        description="DANGEROUS: restore a volume or s3 dump without sha256, unverified. Whoever can write to its "
        "store then runs SQL in the new database as its owner role. Only for a dump whose store no one else can write.",
    )


class DatabaseSpec(CRModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.version) || !has(oldSelf.version) || self.version == oldSelf.version",
                    "messageExpression": "'spec.database.version cannot change in place (from ' + oldSelf.version + "
                    "' to ' + self.version + '): PostgreSQL refuses a data directory of another major version; "
                    "back up and restore into a new TaskPlatform (docs/operator.md)'",
                },
                {
                    "rule": "has(self.restoreFrom) == has(oldSelf.restoreFrom)",
                    "message": "spec.database.restoreFrom is set only when the TaskPlatform is created",
                },
            ]
        }
    )

    image: str = Field("taskplatform-postgres:15", min_length=1, description="PostgreSQL container image.")
    version: str = Field(
        "15",
        description="PostgreSQL major version the image provides. Fixed once created: a new major version "
        "cannot start on the old data directory.",
        pattern=r"^[0-9]+$",
    )
    storage: StorageSpec = Field(default_factory=StorageSpec, description="The database's persistent volume.")
    resources: Resources = Field(
        Resources(requests=ResourceList(cpu="100m", memory="256Mi")),
        description="Resources of the PostgreSQL container.",
    )
    max_connections: int = Field(
        200,
        ge=25,
        le=10000,
        description="PostgreSQL's max_connections. It must leave room for every API process's whole pool and "
        "readiness probe on the most API pods that can run at once (autoscaling.maxReplicas, or replicas, plus "
        "the one a rolling update adds), the Jobs, and the superuser's reserved slots: a spec that does not fit "
        "is refused, saying how many it needs. Changing it restarts the database.",
    )
    pvc_retention_policy: Literal["Retain", "Delete"] = Field(
        "Retain", description="Whether the database volume is kept (Retain) or deleted with the TaskPlatform."
    )
    backup: BackupSpec | None = Field(None, description="Backups of the database (docs/backup.md).")
    restore_from: RestoreSource | None = Field(
        None,
        description="Create the database from this dump: it is restored before the schema migration runs and "
        "before any API pod starts. Only when the TaskPlatform is created.",
    )


class SecretRef(CRModel):
    name: str = Field(description="Name of a Secret in the same namespace with a `jwt-secret` key.")


class AuthSpec(CRModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.accessTokenTtlSeconds) || !has(self.refreshTokenTtlSeconds) || "
                    "self.accessTokenTtlSeconds < self.refreshTokenTtlSeconds",
                    "message": "accessTokenTtlSeconds must be shorter than refreshTokenTtlSeconds",
                }
            ]
        }
    )

    access_token_ttl_seconds: int = Field(900, ge=10, le=86400, description="Lifetime of access tokens.")
    refresh_token_ttl_seconds: int = Field(
        1209600, ge=60, le=7776000, description="Lifetime of a login session (refresh tokens)."
    )
    secret_ref: SecretRef | None = Field(None, description="Use this JWT secret instead of generating one.")


# --- the database's capacity ------------------------------------------------------------------------------------
# The connections PostgreSQL must have room for (docs/operator.md, "Capacity"): every API process's whole pool and
# its readiness probe's own connection, on the most API pods that can run at once; the Jobs'; and the slots
# PostgreSQL keeps for superusers. A spec that does not fit is refused at admission (CAPACITY_RULE) rather than
# found out at peak load, when the backup and schema Jobs would be turned away.
ROLLOUT_SURGE = 1  # the API pods a rolling update adds (the Deployment's maxSurge, specs/api.py)
PROBE_CONNECTIONS = 1  # each API process's readiness probe has a connection of its own
JOB_CONNECTIONS = 10  # the schema, data migration, backup and restore Jobs together, with room to spare
SUPERUSER_RESERVED_CONNECTIONS = 3  # PostgreSQL's superuser_reserved_connections (the database pod's own hook)
_MOST_PODS = f"((has(self.api.autoscaling) ? self.api.autoscaling.maxReplicas : self.api.replicas) + {ROLLOUT_SURGE})"
_PER_PROCESS = f"(self.api.databasePool.size + self.api.databasePool.maxOverflow + {PROBE_CONNECTIONS})"
_NEEDED = f"({_MOST_PODS} * self.api.workers * {_PER_PROCESS} + {JOB_CONNECTIONS + SUPERUSER_RESERVED_CONNECTIONS})"
CAPACITY_RULE: dict[str, JsonValue] = {
    "rule": f"{_NEEDED} <= self.database.maxConnections",
    # A static message: the API server's cost estimate of a message built with string() exceeds its budget.
    "message": "spec.database.maxConnections is too few for this spec: it must be at least (the most API pods, "
    "autoscaling.maxReplicas or replicas, + 1 for a rollout) x workers x (databasePool.size + databasePool.maxOverflow"
    f" + 1 for the readiness probe) + {JOB_CONNECTIONS} for the Jobs + {SUPERUSER_RESERVED_CONNECTIONS} reserved; "
    "raise it, or lower the replicas, workers or pool",
}


def connections_needed(api: ApiSpec) -> int:
    """CAPACITY_RULE's count, for the operator's own use (a spec stored before the rule existed)."""
    most_pods = (api.autoscaling.max_replicas if api.autoscaling else api.replicas) + ROLLOUT_SURGE
    per_process = api.database_pool.size + api.database_pool.max_overflow + PROBE_CONNECTIONS
    return most_pods * api.workers * per_process + JOB_CONNECTIONS + SUPERUSER_RESERVED_CONNECTIONS


class TaskPlatformSpec(CRModel):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [CAPACITY_RULE]})

    api: ApiSpec = Field(default_factory=ApiSpec, description="The task API Deployment.")
    database: DatabaseSpec = Field(default_factory=DatabaseSpec, description="The PostgreSQL StatefulSet.")
    auth: AuthSpec = Field(default_factory=AuthSpec, description="Token settings.")


MONGODB_PORT = 27017
SOURCE_PORTS_MAX = 16


class SourceEgress(CRModel):
    ports: list[Annotated[int, Field(description="A TCP port.", ge=1, le=65535)]] = Field(
        [MONGODB_PORT],
        min_length=1,
        max_length=SOURCE_PORTS_MAX,
        description="TCP ports the MongoDB source's servers listen on (every member of a replica set, and of an SRV "
        "record's hosts; for a source behind a Kubernetes Service, its targetPort: a policy sees a connection after "
        "the Service's translation).",
    )
    to: list[NetworkPeer] = Field(
        [],
        max_length=NETWORK_PEERS_MAX,
        description="Where the source is: its pods (podSelector, namespaceSelector) or addresses (ipBlock). Empty: "
        "any address on those ports.",
    )


class DataMigrationSpec(CRModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "spec is immutable once created; create a new DataMigration"}
            ]
        }
    )

    target: str = Field(description="Name of the TaskPlatform (same namespace) to migrate into.", min_length=1)
    source_secret_ref: SecretRef = Field(description="Secret whose `uri` key holds the MongoDB URI.")
    source_database: str = Field("legacy", description="MongoDB database name.")
    collections: list[Literal["users", "tasks"]] = Field(
        ["users", "tasks"], description="Which collections to migrate."
    )
    batch_size: int = Field(
        contract.BATCH_SIZE_DEFAULT, ge=1, le=contract.BATCH_SIZE_MAX, description="Documents per transaction, at most."
    )
    batch_bytes: int = Field(
        contract.BATCH_BYTES_DEFAULT,
        ge=1,
        le=contract.BATCH_BYTES_MAX,
        description="Bytes of BSON per transaction, at most (a larger document goes alone): bounds the Job's memory "
        "whatever the documents' sizes (up to 16 MB each).",
    )
    resources: Resources = Field(
        Resources(requests=ResourceList(cpu="250m", memory="256Mi"), limits=ResourceList(memory="1Gi")),
        description="Resources of the migration container (its memory is bounded by batchBytes: four batches and "
        "one server reply at a time).",
    )
    read_order: ReadOrder = Field(ReadOrder.NATURAL, description=READ_ORDER_DESCRIPTION)
    dry_run: bool = Field(False, description="Read, transform and validate only; write nothing.")
    verify: bool = Field(True, description="Compare counts and checksums after migrating.")
    pod_annotations: dict[str, str] = Field(
        {}, description='Annotations for the migration pod, e.g. sidecar.istio.io/inject: "false".'
    )
    source_egress: SourceEgress = Field(
        default_factory=SourceEgress,
        description="Where the migration Job may connect besides its database and DNS: the MongoDB source (its URI "
        "is in the Secret, which the operator does not read, so the source's ports and addresses are said here).",
    )


class ConditionType(enum.StrEnum):
    """Every condition type the operator writes. A StrEnum: it is its own name on the wire."""

    # TaskPlatform
    READY = "Ready"
    DATABASE_READY = "DatabaseReady"
    API_READY = "ApiReady"
    DEGRADED = "Degraded"
    STORAGE_READY = "StorageReady"
    BACKUP_HEALTHY = "BackupHealthy"
    DATABASE_RESTORED = "DatabaseRestored"
    JWT_KEY_CURRENT = "JWTKeyCurrent"
    # DataMigration, TaskPlatformBackup
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


PLATFORM_CONDITIONS = (
    ConditionType.READY,
    ConditionType.DATABASE_READY,
    ConditionType.API_READY,
    ConditionType.DEGRADED,
    ConditionType.STORAGE_READY,
    ConditionType.BACKUP_HEALTHY,
    ConditionType.DATABASE_RESTORED,
    ConditionType.JWT_KEY_CURRENT,
)
JOB_CONDITIONS = (ConditionType.RUNNING, ConditionType.SUCCEEDED, ConditionType.FAILED)
MIGRATION_CONDITIONS = BACKUP_CONDITIONS = JOB_CONDITIONS


class Condition(CRModel):
    """One aspect of the resource's state, Kubernetes-style."""

    type: str = Field(
        description=f"TaskPlatform: {', '.join(PLATFORM_CONDITIONS)}; DataMigration and TaskPlatformBackup: "
        f"{', '.join(JOB_CONDITIONS)}."
    )
    status: Literal["True", "False", "Unknown"] = Field(description="Whether the condition holds.")
    reason: str = Field("", description="CamelCase reason for the last transition.")
    message: str = Field("", description="Human-readable detail.")
    last_transition_time: str | None = Field(None, description="When the status last changed (RFC 3339).")
    observed_generation: int | None = Field(None, description="The .metadata.generation this was computed from.")


class TaskPlatformStatus(CRModel):
    observed_generation: int | None = Field(None, description="Last .metadata.generation reconciled.")
    conditions: list[Condition] = Field(default_factory=list, description="Current state, one entry per type.")
    replicas: int | None = Field(None, description="API pods that exist (the scale subresource reads this).")
    ready_replicas: int | None = Field(None, description="API pods that are ready.")
    selector: str | None = Field(None, description="Label selector of the API pods (for the scale subresource).")
    endpoint: str | None = Field(None, description="In-cluster URL of the API Service.")
    volume_size: str | None = Field(
        None, description="Capacity of the database volume as bound: the smallest size the spec may be set back to."
    )
    last_backup: str | None = Field(None, description="The most recent TaskPlatformBackup, whatever its outcome.")
    last_successful_backup: str | None = Field(None, description="The most recent completed TaskPlatformBackup.")
    last_successful_backup_time: str | None = Field(None, description="When it completed (RFC 3339).")
    last_schedule_time: str | None = Field(
        None, description="The scheduled time (RFC 3339) of the last backup the schedule started."
    )


_SIZE, _OLD_SIZE = "self.spec.database.storage.size", "oldSelf.spec.database.storage.size"
_VOLUME = "self.status.volumeSize"
# Whole-object transition rules (they read spec and status): a volume never shrinks, but a size the storage
# class could not expand to may be set back to what the volume actually holds (status.volumeSize).
TASKPLATFORM_RULES = [
    {
        "rule": f"!quantity({_SIZE}).isLessThan(quantity({_OLD_SIZE})) || "
        f"(has(self.status) && has({_VOLUME}) && !quantity({_SIZE}).isLessThan(quantity({_VOLUME})))",
        "messageExpression": f"'spec.database.storage.size cannot shrink (from ' + {_OLD_SIZE} + ' to ' + {_SIZE} + ')'"
        f" + (has(self.status) && has({_VOLUME}) ? ': the volume holds ' + {_VOLUME} + ', the smallest size it may be"
        " set back to' : '') + '; a volume only grows: back up and restore into a new TaskPlatform instead'",
    }
]


class DataMigrationStatus(CRModel):
    observed_generation: int | None = Field(None, description="Last .metadata.generation acted on.")
    conditions: list[Condition] = Field(
        default_factory=list, description=f"{', '.join(MIGRATION_CONDITIONS)}, one entry per type."
    )
    job_name: str | None = Field(None, description="The migration Job.")
    read: int | None = Field(None, description="Documents read so far.")
    written: int | None = Field(None, description="Rows imported so far.")
    rejected: int | None = Field(None, description="Documents rejected so far.")
    progress: str | None = Field(None, description="Percentage read, e.g. 42%.")
    start_time: str | None = Field(None, description="When the Job started (RFC 3339).")
    completion_time: str | None = Field(None, description="When it finished (RFC 3339).")


class TaskPlatformBackupSpec(CRModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self == oldSelf",
                    "message": "spec is immutable once created; create a new TaskPlatformBackup",
                }
            ]
        }
    )

    platform: str = Field(
        description="The TaskPlatform (same namespace) whose database is dumped, to the destination of its "
        "spec.database.backup.",
        min_length=1,
    )


BackupPhase = Literal["Pending", "Running", "Completed", "Failed"]


class TaskPlatformBackupStatus(CRModel):
    observed_generation: int | None = Field(None, description="Last .metadata.generation acted on.")
    conditions: list[Condition] = Field(
        default_factory=list, description=f"{', '.join(BACKUP_CONDITIONS)}, one entry per type."
    )
    phase: BackupPhase | None = Field(None, description="Pending, Running, Completed or Failed.")
    message: str | None = Field(None, description="Why it is pending or why it failed.")
    job_name: str | None = Field(None, description="The backup Job.")
    scheduled: bool | None = Field(None, description="Started by spec.database.backup.schedule (else on demand).")
    start_time: str | None = Field(None, description="When the dump started (RFC 3339).")
    completion_time: str | None = Field(None, description="When it finished (RFC 3339).")
    size_bytes: int | None = Field(None, description="Size of the dump (pg_dump custom format, compressed).")
    sha256: str | None = Field(None, description="SHA-256 of the dump as written; a restore verifies it.")
    location: str | None = Field(None, description="Where the dump is, as a URL (s3://bucket/key or file://).")
    key: str | None = Field(None, description="The dump's key (S3) or path (volume) in its store.")
    s3: S3Location | None = Field(None, description="The S3 store it went to (a copy of the platform's, at start).")
    volume_claim: str | None = Field(None, description="The backup volume it went to.")
