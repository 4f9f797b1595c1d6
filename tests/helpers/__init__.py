"""What the tests and the benchmarks run against, one module per environment (imported as `helpers.<module>`:
pyproject's `pythonpath` puts tests/ on the path for pytest, the Makefile's BENCH_PYTHON for the benches).

- `pgcluster`: a throwaway PostgreSQL cluster (initdb in a temp dir, a random port); `free_port`.
- `mongoserver`: FerretDB, a real MongoDB wire-protocol server (scripts/build-ferretdb.sh) on a random port.
- `s3server`: the Versity S3 Gateway (scripts/build-s3server.sh) on a random port, with one bucket.
- `throwaway`: the base of those two: a built binary on a random loopback port, stopped and removed afterwards.
- `kubecluster`: the local control plane (scripts/cluster-up.sh: kube-apiserver and its controllers, kwok nodes),
  or one real local node (`node="local"`, scripts/node-up.sh), or an existing cluster; the operator as a process.
- `e2ecluster`: the end-to-end suite's cluster where pods really run: the chart installed, images loaded, the
  platform manifests and the probes of tests/e2e and tests/node.
- `previousoperator`: the objects the operator from before the database roles created (its builders from git).
- `secretskube`: the API server's Secrets in memory, as far as the operator's credential code uses them (no server).
- `support`: the API as a real uvicorn process against a database; log a user in; the test JWT secret.
- `tampering`: dumps an attacker who can write to the backup store crafts (no server).
- `environments`: the environments' pytest markers, the fixtures that start each, and a record of what a test
  started (tests/conftest.py checks it against the test's markers).
"""
