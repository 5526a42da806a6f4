#!/usr/bin/env bash
# How good is the ETA on a run throttled half of the time? `godwit run` on MariaDB with a
# control socket; a loop toggles `throttle` / `no-throttle` through it every PERIOD
# seconds (default 3). From the JSON progress events, the ETA at 25 %, 50 % and 75 % of
# the copy is compared with the copy's actual remaining time, both as wall time and as
# unthrottled (running) time — the ETA excludes throttled time, so it predicts the
# latter.
#
#   benches/eta_bench.sh [ROWS] [PERIOD]     (default 500000 rows, 3 s)
#
# Starts a private MariaDB (scripts/lib/servers.sh) unless GODWIT_BENCH_URL names a
# server (mysql://USER@HOST:PORT/DB; the database must exist). Builds godwit in release
# mode unless GODWIT_BIN names a binary. GODWIT_BENCH_ARGS adds flags to the run (e.g.
# --max-rows-per-second 20000). Events are kept in $BENCH_OUT (default
# /tmp/godwit-eta-bench-<ROWS>.jsonl). Not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-500000}"
PERIOD="${2:-3}"
case "$ROWS$PERIOD" in '' | *[!0-9]*) echo "usage: $0 [ROWS] [PERIOD]" >&2; exit 2 ;; esac
BENCH_OUT="${BENCH_OUT:-/tmp/godwit-eta-bench-$ROWS.jsonl}"
SOCK="${TMPDIR:-/tmp}/godwit-eta-bench-$$.sock"

if [ -n "${GODWIT_BENCH_URL:-}" ]; then
  URL="$GODWIT_BENCH_URL"
  hostport="${URL#*@}"; hostport="${hostport%%/*}"
  DBNAME="${URL##*/}"
  db() { mariadb --no-defaults -uroot -h"${hostport%:*}" -P"${hostport#*:}" "$@"; }
else
  source scripts/lib/servers.sh
  trap stop_servers EXIT
  ensure_packages
  start_mariadb
  DBNAME=godwit_bench
  URL="mysql://root@127.0.0.1:$MYSQL_PORT/$DBNAME"
  db() { mariadb --no-defaults -uroot -h127.0.0.1 -P"$MYSQL_PORT" "$@"; }
fi
if [ -z "${GODWIT_BIN:-}" ]; then
  cargo build --release --quiet
  GODWIT_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/godwit"
fi

echo "filling $DBNAME.eta_t with $ROWS rows"
db >/dev/null <<SQL
CREATE DATABASE IF NOT EXISTS $DBNAME;
USE $DBNAME;
DROP TABLE IF EXISTS eta_t;
CREATE TABLE eta_t (
  id BIGINT NOT NULL PRIMARY KEY,
  user_id BIGINT NOT NULL,
  note VARCHAR(255) NULL,
  created_at DATETIME NOT NULL,
  KEY idx_user (user_id)
) ENGINE=InnoDB;
INSERT INTO eta_t
SELECT seq, 1 + (seq * 7919) % 100000, CONCAT('row ', seq), TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq SECOND
FROM seq_1_to_${ROWS};
ANALYZE TABLE eta_t;
SQL

# Toggle throttling every PERIOD seconds once the copy runs, until godwit exits.
toggle() {
  while [ ! -S "$SOCK" ]; do sleep 0.1; done
  sleep "$PERIOD"
  while [ -S "$SOCK" ]; do
    "$GODWIT_BIN" ctl --socket "$SOCK" throttle >/dev/null 2>&1 || break
    sleep "$PERIOD"
    "$GODWIT_BIN" ctl --socket "$SOCK" no-throttle >/dev/null 2>&1 || break
    sleep "$PERIOD"
  done
}
toggle &
toggler=$!

echo "godwit: run --table eta_t, throttled every other ${PERIOD} s"
# shellcheck disable=SC2086
"$GODWIT_BIN" run --url "$URL" --table eta_t --alter "ADD COLUMN extra INT NULL" \
  --execute --ok-to-drop-table --skip-verify --format json --serve-socket-file "$SOCK" \
  ${GODWIT_BENCH_ARGS:-} >"$BENCH_OUT"
kill "$toggler" 2>/dev/null || true
wait "$toggler" 2>/dev/null || true
db "$DBNAME" -e "DROP TABLE IF EXISTS eta_t"

python3 - "$BENCH_OUT" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
states = [(e["ts_ms"], e["state"]) for e in ev if e["event"] == "state"]
copy_start = next(t for t, s in states if s == "copy")
after = next(t for t, s in states if t > copy_start and s not in ("copy", "throttled"))
# The copy's last (forced) progress event ends it; what follows in the `copy` state is
# the engine's after-copy work, which the ETA does not cover.
copy_end = max(e["ts_ms"] for e in ev if e["event"] == "progress" and copy_start <= e["ts_ms"] <= after)
# Throttled intervals within the copy.
held, since = [], None
for t, s in states:
    if s == "throttled" and since is None:
        since = t
    elif s != "throttled" and since is not None:
        held.append((since, t)); since = None
def running(a, b):
    return (b - a) - sum(max(0, min(b, y) - max(a, x)) for x, y in held)
prog = [e for e in ev if e["event"] == "progress" and copy_start <= e["ts_ms"] <= copy_end]
est = max(p["rows_estimate"] for p in prog)
print(f"copy: {(copy_end - copy_start) / 1000:.1f} s wall, {running(copy_start, copy_end) / 1000:.1f} s running, "
      f"{((copy_end - copy_start) - running(copy_start, copy_end)) / 1000:.1f} s throttled, estimate {est} rows")
# For comparison, the ETA godwit computed before: the average rate since the copy started,
# throttled time included.
print(f"{'at':>4} {'ETA s':>7} {'left wall s':>12} {'left running s':>15} {'error vs running':>17} {'error vs wall':>14} {'average-rate ETA s':>19} {'its error vs wall':>18}")
for frac in (0.25, 0.5, 0.75):
    p = next((p for p in prog if p["rows_copied"] >= frac * est and p.get("eta_seconds") is not None), None)
    if p is None:
        print(f"{int(frac * 100):>3}% no progress event with an ETA"); continue
    wall = (copy_end - p["ts_ms"]) / 1000
    run = running(p["ts_ms"], copy_end) / 1000
    eta = p["eta_seconds"]
    err = lambda actual: f"{(eta - actual) / actual * 100:+.0f}%" if actual > 0 else "-"
    avg = p["rows_copied"] / max((p["ts_ms"] - copy_start) / 1000, 0.001)
    old = (est - p["rows_copied"]) / avg
    old_err = f"{(old - wall) / wall * 100:+.0f}%" if wall > 0 else "-"
    print(f"{int(frac * 100):>3}% {eta:>7} {wall:>12.1f} {run:>15.1f} {err(run):>17} {err(wall):>14} {old:>19.1f} {old_err:>18}")
PY
