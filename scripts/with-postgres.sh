#!/usr/bin/env bash
# Run a command beside a throwaway PostgreSQL server: installs Debian's postgresql when it is missing
# (as root), starts a private cluster on a free loopback port, exports OKR_SYNC_TEST_POSTGRES_URL,
# runs "$@", then stops the server and removes its files whatever the command did.
set -euo pipefail

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

PGBIN="$(find_bin)"
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: the tests need PostgreSQL; install it with: sudo apt-get install -y postgresql" >&2
        exit 1
    fi
    echo "Installing Debian's postgresql (for the store tests on PostgreSQL)..."
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends postgresql >/tmp/okr-sync-postgresql.log 2>&1; then
        apt-get update -q >>/tmp/okr-sync-postgresql.log 2>&1
        apt-get install -y -q --no-install-recommends postgresql >>/tmp/okr-sync-postgresql.log 2>&1 || {
            echo "error: could not install postgresql (see /tmp/okr-sync-postgresql.log)" >&2
            exit 1
        }
    fi
    PGBIN="$(find_bin)"
fi

ROOT="$(mktemp -d /tmp/okr-sync-pg.XXXXXX)"
AS_OWNER=()
if [ "$(id -u)" -eq 0 ]; then  # the server refuses to run as root: run it as Debian's postgres user
    chown postgres "$ROOT"
    AS_OWNER=(runuser -u postgres --)
fi
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

stop() {
    "${AS_OWNER[@]}" "$PGBIN/pg_ctl" -D "$ROOT/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$ROOT"
}
trap stop EXIT

"${AS_OWNER[@]}" "$PGBIN/initdb" -D "$ROOT/data" -A trust -U postgres --no-sync >"$ROOT/initdb.log" 2>&1 || {
    cat "$ROOT/initdb.log" >&2
    exit 1
}
# A test server: durability off (its data is thrown away), loopback only, enough connections for
# the Prefect server, workers and parallel streams of the scale-out test.
"${AS_OWNER[@]}" "$PGBIN/pg_ctl" -D "$ROOT/data" -w -l "$ROOT/server.log" -o \
    "-p $PORT -k $ROOT -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null || {
    cat "$ROOT/server.log" >&2
    exit 1
}
export OKR_SYNC_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"
echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') for the tests on 127.0.0.1:$PORT"
"$@"
