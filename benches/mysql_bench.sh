#!/usr/bin/env bash
# End-to-end benchmark on MariaDB: the server's own ALTER ... ALGORITHM=COPY against
# `godwit run` with the same change, on two identical tables of N rows (idle server).
#
#   benches/mysql_bench.sh [ROWS]        (default 2000000)
#
# Starts a private MariaDB on a free loopback port (2G buffer pool, so both tables stay
# in memory), builds godwit in release mode, and prints
# native seconds, godwit seconds, the ratio godwit/native and godwit's peak RSS.
# godwit's JSON events are kept in $BENCH_OUT (default /tmp/godwit-bench-<ROWS>.jsonl)
# for a look at chunk sizes and rates (summarised by benches/events.py, which also gives
# the verification's share of the copy time). GODWIT_BENCH_ARGS adds flags to the run,
# e.g. GODWIT_BENCH_ARGS=--skip-verify. Not part of the test suite; timings are noisy,
# compare ratios measured in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-2000000}"
case "$ROWS" in '' | *[!0-9]*) echo "usage: $0 [ROWS]" >&2; exit 2 ;; esac
BENCH_OUT="${BENCH_OUT:-/tmp/godwit-bench-$ROWS.jsonl}"

export GODWIT_MARIADB_BUFFER_POOL="${GODWIT_MARIADB_BUFFER_POOL:-2G}"
source scripts/lib/servers.sh
trap stop_servers EXIT

ensure_packages
if [ ! -x /usr/bin/time ]; then
  echo "installing: time"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi
cargo build --release --quiet
GODWIT="${CARGO_TARGET_DIR:-$PWD/target}/release/godwit"
start_mariadb

db() { mariadb --no-defaults -uroot -h127.0.0.1 -P"$MYSQL_PORT" "$@"; }
now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }

echo "filling godwit_bench.t1 and t2 with $ROWS rows each"
t0=$(now)
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
SELECT seq,
       1 + (seq * 7919) % 100000,
       ELT(1 + seq % 5, 'new', 'paid', 'shipped', 'delivered', 'cancelled'),
       ((seq * 104729) % 1000000) / 100,
       IF(seq % 10 = 0, NULL, CONCAT('order ', seq, ' of user ', 1 + (seq * 7919) % 100000)),
       TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq SECOND
FROM seq_1_to_${ROWS};
CREATE TABLE t2 LIKE t1;
INSERT INTO t2 SELECT * FROM t1;
ANALYZE TABLE t1, t2;
SQL
echo "filled in $(secs "$t0" "$(now)") s"

ALTER="ADD COLUMN shipped_at DATETIME NULL, ADD INDEX idx_status(status)"

echo "native: ALTER TABLE t1 $ALTER, ALGORITHM=COPY"
t0=$(now)
db godwit_bench -e "ALTER TABLE t1 $ALTER, ALGORITHM=COPY"
native=$(secs "$t0" "$(now)")

binlog_bytes() { db -N -e "SHOW BINARY LOGS" | awk '{s += $2} END {print s}'; }
binlog_before=$(binlog_bytes)
echo "godwit: run --table t2 --alter \"$ALTER\" --execute --ok-to-drop-table"
TIME_OUT="$GODWIT_RUN_DIR/godwit.time"
t0=$(now)
/usr/bin/time -v -o "$TIME_OUT" "$GODWIT" run \
  --url "mysql://root@127.0.0.1:$MYSQL_PORT/godwit_bench" --table t2 \
  --alter "$ALTER" --execute --ok-to-drop-table --format json ${GODWIT_BENCH_ARGS:-} >"$BENCH_OUT"
godwit=$(secs "$t0" "$(now)")
rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$TIME_OUT")
cpu_user=$(awk -F': ' '/User time/ {print $2}' "$TIME_OUT")
cpu_sys=$(awk -F': ' '/System time/ {print $2}' "$TIME_OUT")
binlog_mib=$(( ($(binlog_bytes) - binlog_before) >> 20 ))

# Both tables must now have the same rows and the same schema.
sum() {
  db -N godwit_bench -e "SELECT COUNT(*), BIT_XOR(CRC32(CONCAT_WS('#', id, user_id, status, amount, IFNULL(note, '<null>'), created_at, IFNULL(shipped_at, '<null>')))) FROM $1"
}
same=no
[ "$(sum t1)" = "$(sum t2)" ] && same=yes

python3 benches/events.py "$BENCH_OUT"

ratio=$(python3 -c "import sys; print(f'{float(sys.argv[1]) / max(float(sys.argv[2]), 0.001):.2f}')" "$godwit" "$native")
echo
printf 'rows:                 %s\n' "$ROWS"
printf 'native ALTER (COPY):  %s s\n' "$native"
printf 'godwit run:           %s s\n' "$godwit"
printf 'ratio godwit/native:  %s\n' "$ratio"
printf 'godwit peak RSS:      %s MiB (%s kB)\n' "$((rss_kb / 1024))" "$rss_kb"
printf 'godwit CPU:           %s s user, %s s sys\n' "$cpu_user" "$cpu_sys"
printf 'binlog written:       %s MiB during the godwit run\n' "$binlog_mib"
printf 'tables equal:         %s\n' "$same"
printf 'JSON events:          %s\n' "$BENCH_OUT"

# BENCH_DIAG=1: where does the time go? The copy's statement shape on the whole table at
# once, with and without writing the rows to the binlog.
if [ "${BENCH_DIAG:-0}" = 1 ]; then
  echo
  echo "diagnostics (BENCH_DIAG=1):"
  db godwit_bench -e "CREATE TABLE t3 LIKE t2; TRUNCATE t3"
  t0=$(now)
  db godwit_bench -e "INSERT INTO t3 (id, user_id, status, amount, note, created_at) SELECT id, user_id, status, amount, note, created_at FROM t2 FORCE INDEX (PRIMARY)"
  printf 'one INSERT … SELECT of all rows (binlog on):  %s s\n' "$(secs "$t0" "$(now)")"
  db godwit_bench -e "TRUNCATE t3"
  t0=$(now)
  db godwit_bench -e "SET SESSION sql_log_bin = 0; INSERT INTO t3 (id, user_id, status, amount, note, created_at) SELECT id, user_id, status, amount, note, created_at FROM t2 FORCE INDEX (PRIMARY)"
  printf 'one INSERT … SELECT of all rows (sql_log_bin=0): %s s\n' "$(secs "$t0" "$(now)")"
  db godwit_bench -e "DROP TABLE t3; CREATE TABLE t3 LIKE t2; ALTER TABLE t3 DROP INDEX idx_user, DROP INDEX idx_status"
  t0=$(now)
  db godwit_bench -e "INSERT INTO t3 (id, user_id, status, amount, note, created_at) SELECT id, user_id, status, amount, note, created_at FROM t2 FORCE INDEX (PRIMARY); ALTER TABLE t3 ADD INDEX idx_user (user_id), ADD INDEX idx_status (status)"
  printf 'same into a table without secondary indexes, then ADD INDEX: %s s\n' "$(secs "$t0" "$(now)")"
  db godwit_bench -e "DROP TABLE t3"
fi
[ "$same" = yes ]
