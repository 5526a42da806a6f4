#!/usr/bin/env bash
# End-to-end benchmark (not a test): a type change on a 2,000,000-row table,
# `godwit run --execute` vs the in-place `ALTER TABLE … ALTER COLUMN … TYPE` (full rewrite)
# on an identical table. Prints both times, the ratio and godwit's peak RSS.
# Uses GODWIT_TEST_POSTGRES_URL when set, else starts a private server.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${ROWS:-2000000}"
# godwit's JSON events; GODWIT_BENCH_ARGS adds flags to the run (e.g. --skip-verify).
BENCH_OUT="${BENCH_OUT:-/tmp/godwit-pg-bench-$ROWS.jsonl}"
PSQL=/usr/lib/postgresql/15/bin/psql
if [ -z "${GODWIT_TEST_POSTGRES_URL:-}" ]; then
  source scripts/lib/servers.sh
  trap stop_servers EXIT
  ensure_packages
  start_postgres
fi
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-target}/release/godwit"
DB="godwit_bench_$$"
$PSQL "$GODWIT_TEST_POSTGRES_URL" -qc "CREATE DATABASE $DB"
URL="${GODWIT_TEST_POSTGRES_URL%/*}/$DB"
cleanup_db() { $PSQL "$GODWIT_TEST_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true; }
trap 'cleanup_db; type stop_servers >/dev/null 2>&1 && stop_servers || true' EXIT

for t in g n; do
  $PSQL "$URL" -q <<SQL
CREATE TABLE $t (id bigserial PRIMARY KEY, a int NOT NULL, b text, c timestamptz NOT NULL DEFAULT now());
INSERT INTO $t (a, b, c) SELECT i % 100000, md5(i::text), timestamptz '2024-01-01' + i * interval '1 second' FROM generate_series(1, $ROWS) i;
CREATE INDEX ${t}_a_idx ON $t (a);
VACUUM ANALYZE $t;
SQL
done
$PSQL "$URL" -qc "CHECKPOINT"

start=$(date +%s.%N)
/usr/bin/time -v -o /tmp/godwit_bench_time.$$ "$BIN" run --url "$URL" --table g \
  --alter "ALTER COLUMN a TYPE bigint" --execute --ok-to-drop-table --chunk-size 20000 \
  --format json ${GODWIT_BENCH_ARGS:-} >"$BENCH_OUT" 2>/tmp/godwit_bench_log.$$ \
  || { tail -20 /tmp/godwit_bench_log.$$; exit 1; }
godwit_s=$(echo "$(date +%s.%N) - $start" | bc -l)
$PSQL "$URL" -qc "CHECKPOINT"

start=$(date +%s.%N)
$PSQL "$URL" -qc "ALTER TABLE n ALTER COLUMN a TYPE bigint"
native_s=$(echo "$(date +%s.%N) - $start" | bc -l)

rss_kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' /tmp/godwit_bench_time.$$)
same=$($PSQL "$URL" -tAc "SELECT (SELECT md5(string_agg(g::text, ',' ORDER BY id)) FROM g) = (SELECT md5(string_agg(n::text, ',' ORDER BY id)) FROM n)")
rm -f /tmp/godwit_bench_time.$$ /tmp/godwit_bench_log.$$
printf 'rows:            %s\n' "$ROWS"
printf 'godwit run:      %.2f s\n' "$godwit_s"
printf 'native ALTER:    %.2f s\n' "$native_s"
printf 'ratio:           %.2fx (target <= 2x)\n' "$(echo "$godwit_s / $native_s" | bc -l)"
printf 'godwit peak RSS: %.1f MiB\n' "$(echo "$rss_kb / 1024" | bc -l)"
printf 'results equal:   %s\n' "$same"
python3 benches/events.py "$BENCH_OUT"
