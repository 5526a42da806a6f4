#!/usr/bin/env bash
# Resume benchmark on MariaDB (not a test): the same online ALTER on two identical tables
# of N rows; t1 runs uninterrupted, t2 is killed with SIGKILL once its checkpoint shows
# ~70% of the rows copied, then the same command is run again and resumes. Prints both
# times, the ratio (killed + rerun) / uninterrupted, and how many rows the rerun copied.
#
#   benches/resume_bench.sh [ROWS]        (default 2000000)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-2000000}"
case "$ROWS" in '' | *[!0-9]*) echo "usage: $0 [ROWS]" >&2; exit 2 ;; esac
export GODWIT_MARIADB_BUFFER_POOL="${GODWIT_MARIADB_BUFFER_POOL:-2G}"
source scripts/lib/servers.sh
trap stop_servers EXIT
ensure_packages
cargo build --release --quiet
GODWIT="${CARGO_TARGET_DIR:-$PWD/target}/release/godwit"
start_mariadb
db() { mariadb --no-defaults -uroot -h127.0.0.1 -P"$MYSQL_PORT" "$@"; }
now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }
echo "filling godwit_bench.t1 and t2 with $ROWS rows each"
db >/dev/null <<SQL
CREATE DATABASE IF NOT EXISTS godwit_bench;
USE godwit_bench;
CREATE TABLE t1 (
  id BIGINT NOT NULL PRIMARY KEY,
  user_id BIGINT NOT NULL,
  status VARCHAR(32) NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  note VARCHAR(255) NULL,
  created_at DATETIME NOT NULL,
  KEY idx_user (user_id)
) ENGINE=InnoDB;
INSERT INTO t1
SELECT seq, 1 + (seq * 7919) % 100000, ELT(1 + seq % 5, 'new', 'paid', 'shipped', 'delivered', 'cancelled'),
       ((seq * 104729) % 1000000) / 100,
       IF(seq % 10 = 0, NULL, CONCAT('order ', seq, ' of user ', 1 + (seq * 7919) % 100000)),
       TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq SECOND
FROM seq_1_to_${ROWS};
CREATE TABLE t2 LIKE t1;
INSERT INTO t2 SELECT * FROM t1;
ANALYZE TABLE t1, t2;
SQL
ALTER="ADD COLUMN shipped_at DATETIME NULL, ADD INDEX idx_status(status)"
URL="mysql://root@127.0.0.1:$MYSQL_PORT/godwit_bench"
run() { "$GODWIT" run --url "$URL" --table "$1" --alter "$ALTER" --execute --ok-to-drop-table --format json --chunk-time-millis 100; }

t0=$(now)
run t1 >/tmp/godwit-resume-bench-t1.jsonl
whole=$(secs "$t0" "$(now)")

t0=$(now)
# Not through the shell function: $! must be godwit's own process.
"$GODWIT" run --url "$URL" --table t2 --alter "$ALTER" --execute --ok-to-drop-table \
  --format json --chunk-time-millis 100 >/tmp/godwit-resume-bench-t2a.jsonl &
pid=$!
target=$((ROWS * 7 / 10))
while :; do
  got=$(db -N godwit_bench -e "SELECT JSON_VALUE(state, '$.rows_copied') FROM _godwit_checkpoint WHERE table_name = 't2'" 2>/dev/null || true)
  [ -n "$got" ] && [ "$got" -ge "$target" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "the run ended before 70%"; exit 1; }
  sleep 0.05
done
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
killed_at=$(secs "$t0" "$(now)")
t1=$(now)
run t2 >/tmp/godwit-resume-bench-t2b.jsonl
rerun=$(secs "$t1" "$(now)")
total=$(secs "$t0" "$(now)")

python3 - "$ROWS" "$whole" "$killed_at" "$rerun" "$total" <<'PY'
import json, sys
rows, whole, killed, rerun, total = int(sys.argv[1]), *map(float, sys.argv[2:])
ev = [json.loads(l) for l in open("/tmp/godwit-resume-bench-t2b.jsonl") if l.startswith("{")]
res = next(e for e in ev if e.get("event") == "resume")
done = next(e for e in ev if e.get("event") == "done")
again = done["rows_copied"] - res["rows_copied"]
print(f"rows:                          {rows}")
print(f"uninterrupted run:             {whole:.2f} s")
print(f"killed run (until SIGKILL):    {killed:.2f} s, checkpoint at {res['rows_copied']} rows")
print(f"rerun (resumed):               {rerun:.2f} s, copied {again} rows ({100.0 * again / rows:.1f}% of the table)")
print(f"killed + rerun:                {total:.2f} s = {total / whole:.2f}x the uninterrupted run")
PY
sum() { db -N godwit_bench -e "SELECT COUNT(*), BIT_XOR(CRC32(CONCAT_WS('#', id, user_id, status, amount, IFNULL(note, '<null>'), created_at, IFNULL(shipped_at, '<null>')))) FROM $1"; }
[ "$(sum t1)" = "$(sum t2)" ] && echo "tables equal:                  yes" || { echo "tables equal: NO"; exit 1; }
