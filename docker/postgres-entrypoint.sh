#!/bin/sh
# Initialise the cluster on first start (the official image's contract), then exec postgres as PID 1.
# Extra arguments go to postgres (e.g. -p 5433).
set -eu
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${PGDATA:=/var/lib/postgresql/data/pgdata}"
socket=/var/run/postgresql

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "postgres-entrypoint: POSTGRES_PASSWORD is required to initialise the database" >&2
    exit 1
  fi
  mkdir -p "$PGDATA" && chmod 700 "$PGDATA"
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != "postgres" ]; then  # initdb made only `postgres` (and the templates)
    # The temporary server listens on a socket of its own: the pod's postStart hook (the roles' sync) waits for
    # a server on $socket, and must meet the real one, not this one before the database exists or while it stops.
    init_socket=$(mktemp -d)
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -k $init_socket" -w start >/dev/null
    psql -v ON_ERROR_STOP=1 -q -h "$init_socket" -U "$POSTGRES_USER" -d postgres \
      -c "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\""
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    rmdir "$init_socket"
  fi
  echo "postgres-entrypoint: initialised $PGDATA (database $POSTGRES_DB)" >&2
fi
# A volume re-owned for the pod's fsGroup comes back group-writable; PostgreSQL starts only on 0700 or 0750.
chmod 700 "$PGDATA"
exec postgres -D "$PGDATA" -k "$socket" "$@"
