#!/usr/bin/env python3
"""Server CPU per request, by thread and by kind of code, from two `perf record -g` profiles.

Used for BENCHMARKS.md ("Where encrypt's extra CPU goes, by thread and kind"). Record each
profile of a separate `kms serve` while `kms bench --url … --op OP` runs, then give each
profile with the number of requests served while it recorded:

    perf record -F 999 -g -p PID -o healthz.data -- sleep 4   # during --op healthz
    perf record -F 999 -g -p PID -o encrypt.data -- sleep 4   # during --op encrypt
    scripts/perf-by-thread.py healthz.data REQUESTS encrypt.data REQUESTS [KIND]

Each sample is put under its thread (the cooperative pool, the event loops, the audit
writer's dispatch queue) and the kind of its innermost frame; the figures are microseconds
of CPU per request (samples x 1/999 s / requests). With KIND (for example "ours" or
"malloc/free"), the pool threads' symbols of that kind are listed as well.
"""
import collections
import re
import subprocess
import sys

HZ = 999


def load(path):
    out = subprocess.run(["perf", "script", "-i", path, "-F", "comm,ip,sym,dso"],
                         capture_output=True, text=True, check=True).stdout
    samples, current = [], None
    for line in out.split("\n"):
        if not line.strip():
            if current:
                samples.append(current)
            current = None
        elif not line.startswith((" ", "\t")):
            current = {"comm": line.strip(), "stack": []}
        elif current is not None:
            current["stack"].append(line.strip())
    if current:
        samples.append(current)
    return samples


def kind(frame):
    match = re.match(r"[0-9a-f]+ (.*?)(\+0x[0-9a-f]+)? \((.*)\)$", frame)
    if not match:
        return "unknown", frame
    sym, dso = match.group(1), match.group(3)
    if "kernel" in dso:
        return "kernel", sym
    if sym in ("swift_retain", "swift_release", "swift_bridgeObjectRetain", "swift_bridgeObjectRelease") \
            or "RefCounts" in sym:
        return "retain/release", sym
    if re.search(r"malloc|free|_int_|unlink_chunk|swift_allocObject|swift_deallocObject|swift_slowAlloc", sym):
        return "malloc/free", sym
    if "libswift_Concurrency" in dso or "libdispatch" in dso:
        return "concurrency/dispatch", sym
    if "libswiftCore" in dso:
        return "swift runtime, other", sym
    if "libc.so" in dso:
        return "libc, other", sym
    if "Foundation" in dso:
        return "Foundation", sym
    if "CCryptoBoringSSL" in sym:
        return "BoringSSL", sym
    if re.match(r"\$s(7KMSCore|9KMSServer|11KMSProtocol|9KMSClient)", sym):
        return "ours", sym
    if re.match(r"\$s\d+(NIO|_NIO|Hummingbird|HTTPTypes)", sym) or "nio" in sym.lower():
        return "NIO/Hummingbird", sym
    if re.match(r"\$s\d+Crypto", sym):
        return "swift-crypto", sym
    return "other (" + dso.split("/")[-1] + ")", sym


def thread(comm):
    if "default-qos" in comm:
        return "pool"
    if "NIO" in comm:
        return "event loops"
    if "overcommit" in comm:
        return "audit writer"
    return "other"


def tally(path, requests):
    per = 1e6 / HZ / requests
    counts = collections.Counter()
    for sample in load(path):
        if not sample["stack"]:
            continue
        where = thread(sample["comm"])
        counts[(where, kind(sample["stack"][0])[0])] += per
        counts[(where, "ALL")] += per
    return counts


def main():
    base, target = tally(sys.argv[1], float(sys.argv[2])), tally(sys.argv[3], float(sys.argv[4]))
    print(f"{'thread':13s} {'kind':24s} {'first':>8s} {'second':>8s} {'difference':>10s}  (us per request)")
    for key in sorted(set(base) | set(target)):
        a, b = base.get(key, 0.0), target.get(key, 0.0)
        if max(a, b) >= 0.8:
            print(f"{key[0]:13s} {key[1]:24s} {a:8.1f} {b:8.1f} {b - a:+10.1f}")
    if len(sys.argv) > 5:
        per = 1e6 / HZ / float(sys.argv[4])
        symbols = collections.Counter()
        for sample in load(sys.argv[3]):
            if sample["stack"] and thread(sample["comm"]) == "pool":
                what, sym = kind(sample["stack"][0])
                if what == sys.argv[5]:
                    symbols[sym] += per
        names = subprocess.run(["swift", "demangle", "--simplified", "--compact"],
                               input="\n".join(s for s, _ in symbols.most_common(20)),
                               capture_output=True, text=True).stdout.split("\n")
        for (sym, value), name in zip(symbols.most_common(20), names):
            print(f"{value:6.2f}  {(name or sym)[:140]}")


if __name__ == "__main__":
    main()
