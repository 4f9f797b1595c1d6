"""`taskplatform-operator`: run the operator against the current kubeconfig or in-cluster service account."""

from __future__ import annotations

import argparse
import logging
import os

import kopf

from taskplatform.operator import handlers, metrics  # noqa: F401 (handlers: registers them)
from taskplatform.operator.runtime import OperatorMemo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="taskplatform-operator", description="Reconcile TaskPlatform and DataMigration resources."
    )
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[n for n in os.environ.get("WATCH_NAMESPACES", "").split(",") if n],
        help="watch only this namespace (repeatable; env WATCH_NAMESPACES, comma-separated); default: all",
    )
    parser.add_argument(
        "--liveness",
        default=os.environ.get("LIVENESS_ENDPOINT", "http://0.0.0.0:8080/healthz"),
        help="URL the liveness endpoint listens on (empty: none)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("METRICS_PORT", "8081")),
        help="port of the Prometheus metrics endpoint, /metrics (0: none)",
    )
    parser.add_argument(
        "--metrics-address",
        default=os.environ.get("METRICS_ADDRESS", "0.0.0.0"),  # noqa: S104 (scraped from outside the pod)
        help="address it listens on",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--log-format", choices=("json", "plain"), default=os.environ.get("LOG_FORMAT", "json"), help="log lines"
    )
    args = parser.parse_args(argv)
    log_format = kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.PLAIN
    kopf.configure(verbose=args.verbose, log_format=log_format, log_refkey="object")
    if not args.verbose:
        # kopf logs every handled watch event ("Handler 'child_changed' succeeded") at INFO.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # Standalone: one operator replica (the chart's Deployment runs one, strategy Recreate); kopf's peering
    # would only be needed to run several, and it needs cluster-wide peering objects for that.
    # Named namespaces only (no glob patterns): the startup handler turns kopf's cluster-wide scanning off.
    exact_namespaces = bool(args.namespace) and not any(set("*?[") & set(n) for n in args.namespace)
    if args.metrics_port:
        metrics.serve(args.metrics_port, args.metrics_address)
    kopf.run(
        standalone=True,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness or None,
        memo=OperatorMemo(exact_namespaces=exact_namespaces),
    )


if __name__ == "__main__":
    main()
