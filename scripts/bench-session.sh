#!/usr/bin/env bash
# Every figure of BENCHMARKS.md in one session, each printed under the command that made it.
#
#   swift build -c release --product kms --scratch-path .build-release
#   KMS_BENCH_POSTGRES_URL='postgres://kms:…@127.0.0.1:55432/kms?sslmode=disable' scripts/bench-session.sh
#
# KMS: the release binary (default .build-release/release/kms). Without KMS_BENCH_POSTGRES_URL the
# PostgreSQL rows are skipped. SKIP="…" leaves out sections by name: inprocess file postgres flood
# scaling files cli-files.
set -euo pipefail
# Each run's server has a new identity key on the same port: the CLI must not remember it (or ask).
export KMS_KNOWN_SERVERS=off
root=$(cd "$(dirname "$0")/.." && pwd)
K=${KMS:-$root/.build-release/release/kms}
work=$(mktemp -d /tmp/kms-bench.XXXXXX)
port=3977
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
skip() { [[ " ${SKIP:-} " == *" $1 "* ]]; }
say() { printf '\n## %s\n' "$*"; }
show() { printf '$ %s\n' "$*"; }

# serve NAME [VAR=VALUE...]: kms serve (release) in its own process, limits that would throttle a
# benchmark lifted, logs at error only.
serve() {
    local name=$1
    shift
    mkdir -p "$work/$name"
    (cd "$work/$name" && exec env KMS_PORT=$port KMS_HOST=0.0.0.0 KMS_LOG_LEVEL=error KMS_ROTATE_MAX=1000000 \
        KMS_PENDING_PER_ADDRESS=100000 KMS_PENDING_MAX=100000 KMS_KEY_EXCHANGE_RATE=100000 KMS_SESSIONS_PER_CLIENT=10000000 KMS_MAX_KEYS=10000000 "$@" \
        "$K" serve >"$work/$name/server.log" 2>&1) &
    server_pid=$!
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0; sleep 0.1; done
    cat "$work/$name/server.log"
    exit 1
}
stop() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""; }
# bench NAME ARGS...: kms bench against the server NAME (its admin key signs the key exchanges).
bench() {
    local name=$1
    shift
    show kms bench --url "http://127.0.0.1:$port" --server-pid PID "$@"
    KMS_CLIENT_KEY_FILE="$work/$name/data/admin.key" "$K" bench --url "http://127.0.0.1:$port" \
        --server-pid "$server_pid" "$@"
}

echo "# kms bench session, $(date -u +%FT%TZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "# $("$K" --version 2>/dev/null || true) $(git -C "$root" rev-parse --short HEAD 2>/dev/null || true)"

if ! skip inprocess; then
    say "floors and every operation, in-process server (client on the same cores)"
    show kms bench --floors --duration 5
    "$K" bench --floors --duration 5
fi

ops=(--op healthz --op encrypt --op decrypt --op datakey --op key-exchange --duration 5 --concurrency 32)
if ! skip file; then
    say "file store: kms serve in its own process, server CPU per request from /proc"
    serve file
    # --floors: the key exchange's line also gives the server alone's share of the RSA floor.
    bench file --floors "${ops[@]}"
    say "the same at concurrency 4"
    bench file --op healthz --op encrypt --duration 5 --concurrency 4
    stop
fi

if [ -n "${KMS_BENCH_POSTGRES_URL:-}" ] && ! skip postgres; then
    say "PostgreSQL store (same database server on the same cores), then the file store again"
    serve postgres KMS_STORE=postgres KMS_DATABASE_URL="$KMS_BENCH_POSTGRES_URL" \
        KMS_DATABASE_PREFIX="bench$(date +%s)_"
    bench postgres "${ops[@]}"
    bench postgres --op encrypt --sessions 32 --duration 5
    stop
    serve file2
    bench file2 --op encrypt --duration 5
    bench file2 --op encrypt --sessions 32 --duration 5
    stop
fi

if ! skip flood; then
say "sealed calls during a key-exchange flood (4 Python threads from 127.0.0.2, protocol from the spec)"
serve flood
bench flood --op encrypt --concurrency 4 --sessions 2 --duration 8
(cd "$work/flood" && KMS_CLIENT_KEY_FILE="$work/flood/data/admin.key" \
    python3 "$root/scripts/key-exchange-flood.py" "http://127.0.0.2:$port" 9.5) &
flood=$!
sleep 0.5
bench flood --op encrypt --concurrency 4 --sessions 2 --duration 8
wait "$flood"
stop
fi

if ! skip scaling; then
    say "store and session scaling"
    show kms bench --store-scaling --duration 3
    "$K" bench --store-scaling --duration 3
fi

if ! skip files; then
    say "file encryption (issue 16), in-process"
    show kms bench --op encrypt-file --op decrypt-file --file-bytes 1073741824
    "$K" bench --op encrypt-file --op decrypt-file --file-bytes 1073741824
fi

if ! skip cli-files; then
    say "file encryption through the CLI and a live server, 1 GiB in the page cache, against OpenSSL"
    show openssl speed -evp aes-256-gcm -bytes 65536 -seconds 3
    openssl speed -evp aes-256-gcm -bytes 65536 -seconds 3 2>/dev/null | tail -1
    serve cli
    export BASE_URL="http://127.0.0.1:$port" KMS_CLIENT_KEY_FILE="$work/cli/data/admin.key"
    "$K" keys generate --alias big >/dev/null
    head -c 1073741824 /dev/urandom >"$work/big.bin"
    "$K" encrypt-file --key big "$work/big.bin" "$work/big.kms" 2>/dev/null
    sync # the two files just written would otherwise be written back during the timed runs
    cat "$work/big.bin" "$work/big.kms" >/dev/null
    for args in "encrypt-file --key big --threads 1 $work/big.bin -" "encrypt-file --key big --threads 2 $work/big.bin -" \
        "decrypt-file --threads 1 $work/big.kms -" "decrypt-file --threads 2 $work/big.kms -"; do
        for run in 1 2 3; do
            show kms $args "(run $run)"
            # shellcheck disable=SC2086
            /usr/bin/time -f "    %e s elapsed, max RSS %M KiB" "$K" $args 2>&1 >/dev/null | grep elapsed
        done
    done
    stop
    rm -f "$work/big.bin" "$work/big.kms"
fi
