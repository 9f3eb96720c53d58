#!/usr/bin/env bash
# Starts a throw-away PostgreSQL cluster on loopback for the tests.
#   source .ci/postgres.sh start   -> exports KMS_TEST_POSTGRES_URL
#   .ci/postgres.sh stop
set -euo pipefail
pg_dir=${KMS_PG_DIR:-/tmp/kms-pg}
pg_port=${KMS_PG_PORT:-55432}

pg_bin() {
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$bin" ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    fi
    echo "$bin"
}

case "${1:-start}" in
start)
    bin=$(pg_bin)
    rm -rf "$pg_dir"
    mkdir -p "$pg_dir"
    chmod 700 "$pg_dir"
    # PostgreSQL refuses to run as root. A user namespace maps this root to an
    # ordinary uid inside, so the server runs unprivileged without needing a
    # system account. (An earlier comment here blamed sandboxes for denying
    # /dev/null to other uids: it was the test suite tightening /dev to 0700,
    # fixed in DurableFile.prepareFolder; FileKeyStoreTests checks it.)
    as_pg() { unshare --user --map-user=1000 --map-group=1000 -- "$@"; }
    as_pg "$bin/initdb" -D "$pg_dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
    as_pg "$bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
        -o "-k $pg_dir -p $pg_port -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=300" start >/dev/null
    as_pg "$bin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -q -c "CREATE ROLE kms LOGIN PASSWORD 'kms-test'" \
        -c "CREATE DATABASE kms OWNER kms"
    export KMS_TEST_POSTGRES_URL="postgres://kms:kms-test@127.0.0.1:$pg_port/kms"
    echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') running on 127.0.0.1:$pg_port ($pg_dir)"
    ;;
stop)
    bin=$(pg_bin)
    unshare --user --map-user=1000 --map-group=1000 -- "$bin/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null || true
    ;;
esac
