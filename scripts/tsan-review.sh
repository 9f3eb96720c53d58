#!/bin/bash
# The ThreadSanitizer review of docs/architecture.md ("Rules"), with locks it can follow: a worktree of
# HEAD made for it (TREE=path keeps it, and its build, for the next run) gets
# scripts/tsan/TSanVisibleMutex.swift in every target that uses Mutex, is built with -DKMS_TSAN_LOCKS and
# --sanitize=thread, and runs the suite with reports in $OUT (default a new /tmp/kms-tsan-reports.*).
# PostgreSQL tests run when KMS_TEST_POSTGRES_URL is set, as in `swift test`. Takes about 30 minutes on
# 2 cores. Arguments go to `swift test` (a --filter, say).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd -P)
head=$(git -C "$repo" rev-parse HEAD)
reason=kms-tsan-review
out=${OUT:-$(mktemp -d /tmp/kms-tsan-reports.XXXXXX)}
if [ -n "${TREE:-}" ] && [ -e "$TREE" ]; then
    # Only a worktree this script made (locked with its reason) is reused, moved to HEAD and cleaned: never
    # the checkout itself, nor a worktree of someone's own work.
    tree=$(cd "$TREE" && pwd -P)
    git -C "$repo" worktree list --porcelain | awk -v t="worktree $tree" -v r="locked $reason" '
        $0 == t { mine = 1; next } /^worktree / { mine = 0 } mine && $0 == r { found = 1 } END { exit !found }' \
        || { echo "TREE=$tree is not a worktree this script made (git worktree list: locked $reason)" >&2; exit 2; }
    git -C "$tree" checkout --quiet --force --detach "$head"
    git -C "$tree" clean --quiet -fd
else
    tree=${TREE:-$(mktemp -d /tmp/kms-tsan-tree.XXXXXX)}
    mkdir -p "$tree"
    tree=$(cd "$tree" && pwd -P)
    case "$tree/" in "$repo"/*) echo "TREE must be outside $repo" >&2; exit 2 ;; esac
    git -C "$repo" worktree add --lock --reason "$reason" --detach "$tree" "$head"
fi
# Each target (Sources/NAME or Tests/NAME) with a file that names Mutex; paths read whole, the tree's own
# prefix cut as text (a path with spaces or a `#` is no pattern).
{ grep -rl '--include=*.swift' "Mutex" "$tree/Sources" "$tree/Tests" || [ $? -eq 1 ]; } | while IFS= read -r file; do
    relative=${file#"$tree"/}
    IFS=/ read -r top name _ <<< "$relative"
    printf '%s/%s/%s\n' "$tree" "$top" "$name"
done | sort -u | while IFS= read -r target; do
    cp "$repo/scripts/tsan/TSanVisibleMutex.swift" "$target/TSanVisibleMutex.swift"
done
cd "$tree"
swift build --build-tests --sanitize=thread -Xswiftc -DKMS_TSAN_LOCKS --scratch-path "$tree/.build-tsan"
mkdir -p "$out"
TSAN_OPTIONS="log_path=$out/report halt_on_error=0" swift test --skip-build --sanitize=thread \
    --scratch-path "$tree/.build-tsan" "$@" || true
echo "reports: $(ls "$out" | wc -l) in $out (remove the tree with: git worktree remove --force --force $tree)"
