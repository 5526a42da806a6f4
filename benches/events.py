#!/usr/bin/env python3
"""Summarise godwit's JSON events (one per line) from a benchmark run: how long each state
lasted, and what the verification before the cut-over cost next to the copy.

    python3 benches/events.py EVENTS.jsonl
"""
import json
import sys

events = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
states = [e for e in events if e.get("event") == "state"]
spans = {}
for a, b in zip(states, states[1:]):
    spans[a["state"]] = spans.get(a["state"], 0) + b["ts_ms"] - a["ts_ms"]
print("time per state (ms): " + ", ".join(f"{k} {v}" for k, v in spans.items()))
prog = [e for e in events if e.get("event") == "progress" and e.get("state") == "copy"]
if prog:
    sizes = [e["chunk_size"] for e in prog]
    print(f"chunk size during copy: first {sizes[0]}, max {max(sizes)}, last {sizes[-1]}")
done = [e for e in events if e.get("event") == "done"]
if done:
    d = done[0]
    print(f"godwit: rows_copied {d['rows_copied']}, keys_replayed {d['keys_replayed']}, "
          f"cut_over_ms {d['cut_over_ms']}, elapsed_ms {d['elapsed_ms']}")
    v = d.get("verify")
    copy_ms = spans.get("copy", 0)
    if v:
        share = 100.0 * v["millis"] / copy_ms if copy_ms else 0.0
        print(f"verify: {v['millis']} ms for {v['rows']} rows in {v['chunks']} chunks, "
              f"{share:.1f}% of the copy's {copy_ms} ms; repaired ranges {v['repaired_ranges']}")
    else:
        print("verify: skipped")
