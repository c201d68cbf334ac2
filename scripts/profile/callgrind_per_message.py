#!/usr/bin/env python3
"""Per-message instruction costs from two callgrind runs of the server.

Usage: callgrind_per_message.py SMALL_PREFIX LARGE_PREFIX MESSAGES
  SMALL_PREFIX / LARGE_PREFIX: the `<dir>/<tag>.out.<pid>` prefix of the two
  runs (callgrind-server.sh, --separate-threads=yes), the same workload with
  fewer and more messages; MESSAGES: how many more messages the large run
  delivered. Start-up, registration and shutdown cancel out in the difference.

Threads: `writer` (its entry is store/sqlite/writer.rs), `checkpoint`
(store/sqlite/checkpoint.rs), `tokio` (everything else: main, workers,
blocking pool). Prints instructions per message per group, the writer's and
the tokio side's self cost by bucket, the writer's top inclusive functions,
and call counts per message.
"""
import collections, glob, re, subprocess, sys

def annotate(path, inclusive):
    out = subprocess.run(["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}",
                          "--threshold=100", "--auto=no", path], capture_output=True, text=True).stdout
    acc = collections.Counter()
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(.*)", line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        n = int(m.group(1).replace(",", ""))
        name = re.sub(r" \[[^\]]*\]$", "", m.group(2))
        if name[:1] in "/." or name.startswith("???"):
            name = name.split(":", 1)[-1]
        # The same function appears once per source file it was inlined from:
        # self costs add up, inclusive costs overlap (keep the largest).
        acc[name] = max(acc[name], n) if inclusive else acc[name] + n
    return acc

def calls(path):
    names, acc, cur = {}, collections.Counter(), None
    for line in open(path, errors="replace"):
        m = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?", line.strip())
        if m:
            if m.group(3):
                names[m.group(2)] = m.group(3)
            if m.group(1) == "cfn":
                cur = names.get(m.group(2))
        elif line.startswith("calls=") and cur:
            acc[cur] += int(line.split()[0][6:])
    return acc

def classify(prefix):
    groups = collections.defaultdict(list)
    for path in sorted(glob.glob(prefix + ".out.*-*")):
        head = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--auto=no", path],
                              capture_output=True, text=True).stdout.splitlines()[:60]
        entry = " ".join(l for l in head if "__rust_begin_short_backtrace" in l)
        kind = "writer" if "sqlite/writer.rs" in entry else "checkpoint" if "checkpoint.rs" in entry else "tokio"
        groups[kind].append(path)
    return groups

BUCKETS = [
    ("allocation (malloc/free/realloc, drops)", r"malloc|free|realloc|__rdl_|__rust_alloc|__rust_dealloc|finish_grow|do_reserve|_int_|tcache|RawVec|unlink_chunk|drop_in_place"),
    ("hashing (SipHash/foldhash)", r"hash|Hasher|sip"),
    ("serde / JSON", r"serde|json|Serializer|Deserializer|escape|itoa|ryu"),
    ("WebSocket framing (tungstenite)", r"tungstenite|WebSocket|apply_mask|frame"),
    ("HTTP (hyper/axum)", r"hyper|axum|http::|httparse|tower"),
    ("fan-out / registry / gateway", r"missive_server::(bus|gateway)|registry"),
    ("formatting (uuid, fmt, timestamps)", r"fmt|uuid|format"),
    ("SQLite engine (C)", r"^(sqlite3|wal|pager|btree|balance|vdbe|getPage|getAndInit|moveTo|release|allocate|unix|pcache|accessPayload|insertCell|fillInCell|dropCell|computeCell|cellSize|pageFind|assemblePage|editPage|rebuildPage|decodeFlags|btreeParse|mem|op|record|serialGet|columnMem|out2|clearCell|freeSpace|allocateSpace|defragment|fetch|invalidate|read|seekAndWrite)"),
    ("rusqlite bindings", r"rusqlite"),
    ("memcpy/memset/memcmp", r"mem(cpy|set|cmp|move|chr)|strlen"),
    ("tokio runtime, channels, locks", r"tokio|flume|parking_lot|futex|mio|crossbeam|event_listener|std::sync|Condvar|Mutex|pthread|__lll|epoll"),
    ("missive (other)", r"missive"),
]

def main():
    small, large, messages = sys.argv[1], sys.argv[2], float(sys.argv[3])
    a, b = classify(small), classify(large)
    def per_message(kind, fn):
        before, after = collections.Counter(), collections.Counter()
        for p in a[kind]:
            before.update(fn(p))
        for p in b[kind]:
            after.update(fn(p))
        return {k: (after[k] - before.get(k, 0)) / messages for k in after}
    for kind in ("writer", "tokio", "checkpoint"):
        total = per_message(kind, lambda p: annotate(p, False))
        print(f"\n== {kind}: {sum(total.values()):,.0f} instructions per message")
        buckets = collections.Counter()
        for name, v in total.items():
            buckets[next((b for b, pat in BUCKETS if re.search(pat, name)), "other")] += v
        for name, v in buckets.most_common():
            print(f"{v:10,.0f}  {name}")
        if kind == "checkpoint":
            continue
        print(f"-- {kind}: top inclusive")
        incl = per_message(kind, lambda p: annotate(p, True))
        for name, v in sorted(incl.items(), key=lambda kv: -kv[1])[:40]:
            print(f"{v:10,.0f}  {name[:150]}")
        print(f"-- {kind}: calls per message")
        c = per_message(kind, calls)
        for pat in [r"^sqlite3_step$", r"^sqlite3_prepare", r"^malloc$", r"^free$", r"^realloc$",
                    r"^(fsync|fdatasync)$", r"^(pwrite|pwrite64)$", r"^(send|sendto|write|writev)$",
                    r"^(recv|recvfrom|read)$", r"^epoll_wait$", r"^syscall$"]:
            for name in sorted(c):
                if re.search(pat, name) and c[name] > 0:
                    print(f"{c[name]:10.2f}  {name}")

if __name__ == "__main__":
    main()
