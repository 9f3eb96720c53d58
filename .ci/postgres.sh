#!/usr/bin/env bash
# Starts a throw-away PostgreSQL cluster on loopback for the tests, with TLS.
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
    # TLS from a throw-away CA: a server certificate naming 127.0.0.1 and
    # localhost (not 127.0.0.2, where the server also listens, so verify-full
    # and verify-ca differ), and a second CA that signed nothing here.
    command -v openssl >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
    tls="$pg_dir/tls"
    mkdir -p "$tls"
    ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${ec[@]}" -keyout "$tls/ca.key" -out "$tls/ca.crt" -days 3 -subj "/CN=kms test CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
    openssl req -x509 "${ec[@]}" -keyout "$tls/other-ca.key" -out "$tls/other-ca.crt" -days 3 \
        -subj "/CN=kms unrelated CA" -addext "basicConstraints=critical,CA:TRUE" 2>/dev/null
    openssl req "${ec[@]}" -keyout "$tls/server.key" -out "$tls/server.csr" -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >"$tls/server.ext"
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial \
        -out "$tls/server.crt" -days 3 -extfile "$tls/server.ext" 2>/dev/null
    rm -f "$tls/ca.key" "$tls/other-ca.key" "$tls/server.csr"
    chmod 600 "$tls/server.key"
    # Started until it listens on 127.0.0.1 as well: PostgreSQL starts when it can bind any of its
    # addresses, and a busy machine's outgoing connection can hold the port on one of them for a moment
    # (the ephemeral range includes it): seen once, "could not bind IPv4 address 127.0.0.1".
    # Both addresses are checked (the TLS tests use 127.0.0.2), and a start that fails outright (both
    # held, or -w timing out) is tried again too.
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        if as_pg "$bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
            -o "-k $pg_dir -p $pg_port -c listen_addresses=127.0.0.1,127.0.0.2 -c fsync=on -c max_connections=300 -c ssl=on -c ssl_cert_file=$tls/server.crt -c ssl_key_file=$tls/server.key" start >/dev/null &&
            as_pg "$bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" &&
            as_pg "$bin/pg_isready" -q -h 127.0.0.2 -p "$pg_port"; then
            break
        fi
        as_pg "$bin/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null 2>&1 || true
        if [ "$attempt" = 10 ]; then
            echo "PostgreSQL could not listen on 127.0.0.1 and 127.0.0.2, port $pg_port (see $pg_dir/log)" >&2
            exit 1
        fi
        sleep 2
    done
    as_pg "$bin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -q -c "CREATE ROLE kms LOGIN PASSWORD 'kms-test'" \
        -c "CREATE DATABASE kms OWNER kms"
    # Every PostgreSQL test (the store suites, the two-instance test) runs over
    # TLS with the certificate checked; PostgresTLSTests tries the other modes.
    export KMS_TEST_POSTGRES_URL="postgres://kms:kms-test@127.0.0.1:$pg_port/kms?sslmode=verify-full&sslrootcert=$tls/ca.crt"
    export KMS_TEST_POSTGRES_TLS_CA="$tls/ca.crt" KMS_TEST_POSTGRES_OTHER_CA="$tls/other-ca.crt"
    export KMS_TEST_POSTGRES_SOCKET_DIR="$pg_dir"
    echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') running on 127.0.0.1:$pg_port ($pg_dir), TLS from a throw-away CA"
    ;;
stop)
    bin=$(pg_bin)
    unshare --user --map-user=1000 --map-group=1000 -- "$bin/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null || true
    ;;
esac
