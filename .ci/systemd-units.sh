#!/usr/bin/env bash
# Checks deploy/*.service and *.timer (issue 20): `systemd-analyze verify`, and an exposure
# score of at most 2.0 from `systemd-analyze security --offline=true` for each service.
# Usage: .ci/systemd-units.sh PATH-TO-KMS-BINARY
set -euo pipefail
binary=$(realpath "$1")
units=$(mktemp -d)
trap 'rm -rf "$units"' EXIT
for unit in deploy/*.service deploy/*.timer; do
    # verify needs ExecStart's binary to exist: point it at the one just built.
    sed "s#/usr/local/bin/kms#$binary#g" "$unit" >"$units/$(basename "$unit")"
done
(cd "$units" && systemd-analyze verify ./*.service ./*.timer)
echo "systemd-analyze verify: $(ls "$units" | tr '\n' ' ')passed"
for service in "$units"/*.service; do
    score=$(systemd-analyze security --offline=true "$service" 2>/dev/null | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
    echo "$(basename "$service"): exposure $score"
    awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }' || { echo "exposure above 2.0"; exit 1; }
done
