#!/bin/bash
# The ThreadSanitizer review of docs/architecture.md ("Rules"), with locks it can follow: a throw-away
# worktree of HEAD gets scripts/tsan/TSanVisibleMutex.swift in every target that uses Mutex, is built with
# -DKMS_TSAN_LOCKS and --sanitize=thread, and runs the suite with reports in $OUT (default /tmp/kms-tsan).
# PostgreSQL tests run when KMS_TEST_POSTGRES_URL is set, as in `swift test`. Takes about 30 minutes on 2 cores.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tree=${TREE:-/tmp/kms-tsan-tree}
out=${OUT:-/tmp/kms-tsan}
[ -d "$tree" ] || git -C "$repo" worktree add --detach "$tree" HEAD
for target in $(grep -rl "Mutex" "$tree/Sources" "$tree/Tests" --include=*.swift | xargs -n1 dirname \
    | sed -E "s#^($tree/(Sources|Tests)/[^/]+).*#\1#" | sort -u); do
    cp "$repo/scripts/tsan/TSanVisibleMutex.swift" "$target/TSanVisibleMutex.swift"
done
cd "$tree"
swift build --build-tests --sanitize=thread -Xswiftc -DKMS_TSAN_LOCKS --scratch-path "$tree/.build-tsan"
mkdir -p "$out"
TSAN_OPTIONS="log_path=$out/report halt_on_error=0" swift test --skip-build --sanitize=thread \
    --scratch-path "$tree/.build-tsan" "$@" || true
echo "reports: $(ls "$out" | wc -l) in $out"
