"""The database's roles: one per kind of client, each with only what its job needs (docs/operator.md,
"Database roles"), kept in step by the database pod itself.

The bootstrap superuser (initdb's, the image's POSTGRES_USER) is used only inside the database pod, over its
local socket, where the image trusts it: the pod's postStart hook (SYNC_SCRIPT) creates the roles below when
they are missing, resets their attributes, memberships, passwords and grants, and moves the schema's objects to
the owner role, in one transaction, on every start. A pod's environment then holds one role's password and URL
(operator/specs/); only the database pod has the superuser's, and every role's (to set them).

Passwords reach SQL as psql variables read from the environment (`\\getenv`, then `:'name'`, which psql quotes
as a literal): never pasted into a statement, never in a process's arguments. The session turns statement
logging off and errors terse (no statement text), so no password reaches the server's or the hook's log.
"""

from __future__ import annotations

from dataclasses import dataclass

SUPERUSER = "taskplatform"  # POSTGRES_USER: made by initdb; a superuser the database pod alone can log in as
SUPERUSER_PASSWORD_ENV = "POSTGRES_PASSWORD"  # the image's contract (initdb on first start)
# Where the postStart hook writes its outcome: the container's own log (PID 1 is postgres, the same user).
SYNC_LOG = "/proc/1/fd/2"
SYNC_DONE = "taskplatform role sync: roles in step"
SYNC_FAILED = "taskplatform role sync FAILED"


@dataclass(frozen=True, slots=True)
class DatabaseRole:
    name: str  # the PostgreSQL role
    key: str  # its Secret keys `<key>-password` and `<key>-database-url`, and its password's env in the database pod
    may: str  # what it may do (docs/operator.md lists the same)

    @property
    def password_key(self) -> str:
        return f"{self.key}-password"

    @property
    def url_key(self) -> str:
        return f"{self.key}-database-url"

    @property
    def password_env(self) -> str:
        """The variable that holds this role's password in the database pod (and nowhere else)."""
        return f"TASKPLATFORM_{self.key.upper()}_PASSWORD"


OWNER_ROLE = DatabaseRole(
    "taskplatform_owner",
    "owner",
    "owns the schema's tables, sequences and the Alembic version: DDL and DML on them, CREATE on schema public "
    "and on the database (pg_trgm is a trusted extension); the schema Job's migrations and the restore",
)
API_ROLE = DatabaseRole(
    "taskplatform_api",
    "api",
    "SELECT, INSERT, UPDATE, DELETE on the schema's tables and USAGE, SELECT on its sequences, including those "
    "created later by the owner (default privileges); no DDL, no TRUNCATE, no temporary tables",
)
MIGRATION_ROLE = DatabaseRole(
    "taskplatform_migration",
    "migration",
    "a member of the owner role (its import drops and rebuilds the secondary indexes of users and tasks on an "
    "initial load, which only a table's owner may), and TEMPORARY for its staging tables",
)
BACKUP_ROLE = DatabaseRole(
    "taskplatform_backup",
    "backup",
    "pg_read_all_data: reads every table and sequence (pg_dump), writes nothing",
)
ROLES = (OWNER_ROLE, API_ROLE, MIGRATION_ROLE, BACKUP_ROLE)
# Exactly these memberships; any other membership of these roles is revoked on each start.
MEMBERSHIPS = ((MIGRATION_ROLE.name, OWNER_ROLE.name), (BACKUP_ROLE.name, "pg_read_all_data"))
# Database privileges (PUBLIC's default CONNECT and TEMPORARY are revoked).
DATABASE_PRIVILEGES = {
    OWNER_ROLE.name: "CONNECT, TEMPORARY, CREATE",
    API_ROLE.name: "CONNECT",
    MIGRATION_ROLE.name: "CONNECT, TEMPORARY",
    BACKUP_ROLE.name: "CONNECT",
}
TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"  # the API role's, on every table of the schema
SEQUENCE_PRIVILEGES = "USAGE, SELECT"
SCHEMA = "public"
# `ALTER <kind>` for the relations moved to the owner role, by pg_class.relkind (indexes and TOAST tables
# follow their table; a sequence owned by a column follows its table too).
_RELATION_KINDS = (
    "CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' "
    "WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END"
)


def _names(names: list[str] | tuple[str, ...]) -> str:
    """A SQL array of role names (the constants above: identifiers without quotes to escape)."""
    return "ARRAY[" + ", ".join(f"'{name}'" for name in names) + "]::text[]"


def _variable(role: DatabaseRole) -> str:
    return f"{role.key}_password"


def sync_sql() -> str:
    """The psql script the hook runs as the superuser, in one transaction (psql -1): idempotent, so every start
    runs all of it, whether the database is new, restored, or made by an operator from before these roles."""
    roles = [role.name for role in ROLES]
    grantees = ", ".join(roles)
    owner, api = OWNER_ROLE.name, API_ROLE.name
    not_owners = ", ".join(role.name for role in ROLES if role is not OWNER_ROLE)
    lines = [
        "\\set ON_ERROR_STOP on",
        "\\set VERBOSITY terse",  # an error names no statement text (it would hold a password)
        "SET LOCAL log_statement = 'none';",
        "SET LOCAL log_min_error_statement = 'panic';",
        "SET LOCAL client_min_messages = 'warning';",
        "-- The roles: created when missing; attributes, passwords and memberships reset on every start.",
        f"SELECT format('CREATE ROLE %I', name) FROM unnest({_names(roles)}) AS name "
        "WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) \\gexec",
        f"\\getenv superuser_password {SUPERUSER_PASSWORD_ENV}",
        "ALTER ROLE CURRENT_USER PASSWORD :'superuser_password';",
    ]
    for role in ROLES:
        lines += [
            f"\\getenv {_variable(role)} {role.password_env}",
            f"ALTER ROLE {role.name} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS "
            f"INHERIT CONNECTION LIMIT -1 VALID UNTIL 'infinity' PASSWORD :'{_variable(role)}';",
        ]
    wanted = " OR ".join(f"(m.rolname = '{member}' AND r.rolname = '{granted}')" for member, granted in MEMBERSHIPS)
    lines += [
        "\\unset superuser_password",
        *(f"\\unset {_variable(role)}" for role in ROLES),
        "SELECT format('REVOKE %I FROM %I GRANTED BY %I', r.rolname, m.rolname, g.rolname) "
        "FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member "
        f"JOIN pg_roles g ON g.oid = a.grantor WHERE m.rolname = ANY ({_names(roles)}) AND NOT ({wanted}) \\gexec",
        *(f"GRANT {granted} TO {member};" for member, granted in MEMBERSHIPS),
        "-- The database: nobody but these roles (and the superuser) may connect; to the others (`postgres`) none.",
        "SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC, " + grantees + "', datname) FROM pg_database "
        "WHERE datallowconn AND NOT datistemplate \\gexec",
        *(
            f"SELECT format('GRANT {privileges} ON DATABASE %I TO {name}', current_database()) \\gexec"
            for name, privileges in DATABASE_PRIVILEGES.items()
        ),
        f"REVOKE CREATE ON SCHEMA {SCHEMA} FROM PUBLIC;",  # PostgreSQL < 15 grants it
        f"REVOKE ALL ON SCHEMA {SCHEMA} FROM {grantees};",
        f"GRANT USAGE, CREATE ON SCHEMA {SCHEMA} TO {owner};",
        f"GRANT USAGE ON SCHEMA {SCHEMA} TO {api}, {BACKUP_ROLE.name};",
        "-- The schema's objects belong to the owner role: on a database made by an operator from before these",
        "-- roles they belong to the superuser (the schema Job ran as it). Extension members stay as they are.",
        "DO $$",
        "DECLARE item record;",
        "BEGIN",
        f"  FOR item IN SELECT format('ALTER %s %s OWNER TO {owner}', {_RELATION_KINDS}, c.oid::regclass) AS ddl",
        "    FROM pg_class c",
        f"    WHERE c.relnamespace = '{SCHEMA}'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')",
        f"      AND c.relowner <> '{owner}'::regrole",
        "      AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid",
        "                      AND (d.deptype = 'e' OR (c.relkind = 'S' AND d.deptype IN ('a', 'i'))))",
        "    UNION ALL",
        f"    SELECT format('ALTER TYPE %s OWNER TO {owner}', t.oid::regtype) FROM pg_type t",
        f"    WHERE t.typnamespace = '{SCHEMA}'::regnamespace AND t.typtype IN ('e', 'd', 'r')",
        f"      AND t.typowner <> '{owner}'::regrole",
        "      AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid",
        "                      AND d.deptype = 'e')",
        "    UNION ALL",
        f"    SELECT format('ALTER ROUTINE %s OWNER TO {owner}', p.oid::regprocedure) FROM pg_proc p",
        f"    WHERE p.pronamespace = '{SCHEMA}'::regnamespace AND p.proowner <> '{owner}'::regrole",
        "      AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid",
        "                      AND d.deptype = 'e')",
        "  LOOP",
        "    EXECUTE item.ddl;",
        "  END LOOP;",
        "END",
        "$$;",
        "-- What the other roles may do with them, now and with whatever the owner creates later.",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {SCHEMA} FROM {not_owners};",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {SCHEMA} FROM {not_owners};",
        f"GRANT {TABLE_PRIVILEGES} ON ALL TABLES IN SCHEMA {SCHEMA} TO {api};",
        f"GRANT {SEQUENCE_PRIVILEGES} ON ALL SEQUENCES IN SCHEMA {SCHEMA} TO {api};",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {SCHEMA} GRANT {TABLE_PRIVILEGES} ON TABLES TO {api};",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {SCHEMA} "
        f"GRANT {SEQUENCE_PRIVILEGES} ON SEQUENCES TO {api};",
    ]
    return "\n".join(lines) + "\n"


# The postStart hook. The image sets the superuser's password only when it creates the cluster; this keeps every
# role equal to the Secret on every start, so a changed or re-created Secret takes effect when the pod restarts
# (its template's credentials digest covers every password). A failing postStart hook would kill the database, so
# a failure is written to the container's log and tolerated: the clients then fail to log in (and the API's
# /readyz fails) while the database itself keeps running. PGHOST, where set, names the socket's directory, PGPORT
# the port, and ROLE_SYNC_LOG the log (tests).
#
# It waits for the server to accept connections over TCP, not on the socket: on a new volume the image's entrypoint
# first runs a temporary server on the socket alone (listen_addresses '') to create the database, and a sync run
# against that one finds no database yet and would never run again (seen on the real node). Only the server that
# serves clients listens on TCP; pg_isready reports it up whatever the client authentication rules say.
SYNC_SCRIPT = f"""socket="${{PGHOST:-/var/run/postgresql}}"
log="${{ROLE_SYNC_LOG:-{SYNC_LOG}}}"
for i in $(seq 1 300); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
if out=$(psql -X -q -1 -v ON_ERROR_STOP=1 -h "$socket" -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f - 2>&1 <<'SQL'
{sync_sql()}SQL
); then msg="{SYNC_DONE}"; else msg="{SYNC_FAILED}: $out"; fi
echo "$msg" 2>/dev/null >>"$log"
exit 0
"""
