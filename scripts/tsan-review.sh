#!/bin/bash
# The ThreadSanitizer review of docs/architecture.md ("Rules"), with locks it can follow: a throw-away
# worktree of HEAD (TREE=path keeps it, and its build, for the next run) gets
# scripts/tsan/TSanVisibleMutex.swift in every target that uses Mutex, is built with -DKMS_TSAN_LOCKS and
# --sanitize=thread, and runs the suite with reports in $OUT (default a new /tmp/kms-tsan-reports.*).
# PostgreSQL tests run when KMS_TEST_POSTGRES_URL is set, as in `swift test`. Takes about 30 minutes on 2 cores.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
head=$(git -C "$repo" rev-parse HEAD)
out=${OUT:-$(mktemp -d /tmp/kms-tsan-reports.XXXXXX)}
if [ -n "${TREE:-}" ] && [ -d "$TREE" ]; then
    # A tree kept from an earlier run (its build is reused): only a worktree of this repository, outside
    # it, moved to HEAD; never the checkout itself, which the copies below would change.
    tree=$(cd "$TREE" && pwd)
    case "$tree/" in "$repo"/*) echo "TREE must be outside $repo" >&2; exit 2 ;; esac
    [ "$(cd "$tree" && cd "$(git rev-parse --git-common-dir)" && pwd)" = "$(cd "$repo" && cd "$(git rev-parse --git-common-dir)" && pwd)" ] \
        || { echo "$tree is not a worktree of $repo" >&2; exit 2; }
    git -C "$tree" checkout --quiet --force --detach "$head"
    git -C "$tree" clean --quiet -fd -e .build-tsan
else
    tree=${TREE:-$(mktemp -d /tmp/kms-tsan-tree.XXXXXX)}
    rmdir "$tree" 2>/dev/null || true
    git -C "$repo" worktree add --detach "$tree" "$head"
fi
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
