#!/usr/bin/env bash
# Server CPU per request: `kms serve` (release) in its own process, `kms bench --url`
# against it, the server's user+system CPU read from /proc before and after each op.
# usage: scripts/bench-server-cpu.sh   (OPS="healthz encrypt" DUR=5 C=32 to change)
set -euo pipefail
K=${KMS:-$(cd "$(dirname "$0")/.." && pwd)/.build/release/kms}
D=$(mktemp -d); port=3977
(cd $D && exec env KMS_PORT=$port KMS_HOST=127.0.0.1 KMS_LOG_LEVEL=error KMS_ROTATE_MAX=1000000 KMS_PENDING_PER_ADDRESS=100000 KMS_PENDING_MAX=100000 $K serve >/dev/null 2>&1) &
pid=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
ticks() { awk '{print $14+$15}' /proc/$pid/stat; }
for op in ${OPS:-healthz encrypt decrypt key-exchange}; do
  before=$(ticks)
  line=$($K bench --url http://127.0.0.1:$port --op $op --duration ${DUR:-5} --concurrency ${C:-32} 2>&1 | grep -E "^  $op")
  after=$(ticks)
  reqs=$(echo "$line" | awk '{for(i=1;i<=NF;i++) if($i=="ok") print $(i-1)}')
  echo "$line"
  python3 -c "t=($after-$before)/100; r=$reqs; print(f'    server CPU {t:.2f} s for {r} requests = {t/r*1e6:.0f} us/request')"
done
kill $pid; rm -rf $D
