#!/usr/bin/env bash
# A real online migration: a 1,000,000-row table under concurrent writes.
#
# Starts a private MariaDB on a free loopback port, fills godwit_demo.orders and its twin
# orders_mirror with the same rows, starts a writer that applies every random insert,
# update and delete to both tables in one transaction, and runs
#   godwit run --table orders --alter "ADD COLUMN shipped_at ..., ADD INDEX idx_status ..."
# while the writer keeps going. The writer writes to `orders` by name, so after the swap
# its writes land in the new table. At the end the original columns of orders and
# orders_mirror must hold exactly the same rows, and the writer must have seen no error.
#
# Environment: DEMO_ROWS (default 1000000), DEMO_WRITER_BATCH (transactions per 20 ms
# tick, default 6: roughly 300 tx/s when the server keeps up).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/servers.sh

ROWS="${DEMO_ROWS:-1000000}"
BATCH="${DEMO_WRITER_BATCH:-6}"
WORK="$GODWIT_RUN_DIR/demo"
mkdir -p "$WORK"
WRITER_PID=""

finish() {
  # Stop the writer first (if the script failed half-way), then the server.
  if [ -n "$WRITER_PID" ]; then
    touch "$WORK/writer.stop"
    kill "$WRITER_PID" 2>/dev/null || true
    wait "$WRITER_PID" 2>/dev/null || true
  fi
  stop_servers
}
trap finish EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

ensure_packages
step "building godwit (release)"
cargo build --release --quiet
GODWIT="${CARGO_TARGET_DIR:-$PWD/target}/release/godwit"

step "starting a private MariaDB"
start_mariadb
echo "MariaDB on 127.0.0.1:$MYSQL_PORT (data in $GODWIT_RUN_DIR)"

db() { mariadb --no-defaults -uroot -h127.0.0.1 -P"$MYSQL_PORT" --default-character-set=utf8mb4 "$@"; }

step "creating godwit_demo.orders with $ROWS rows, and its twin orders_mirror"
t0=$SECONDS
db <<SQL
CREATE DATABASE IF NOT EXISTS godwit_demo;
USE godwit_demo;
DROP TABLE IF EXISTS orders, orders_mirror;
CREATE TABLE orders (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id BIGINT NOT NULL,
  status VARCHAR(32) NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  note VARCHAR(255) NULL,
  created_at DATETIME(6) NOT NULL,
  KEY idx_user (user_id)
) ENGINE=InnoDB;
INSERT INTO orders (id, user_id, status, amount, note, created_at)
SELECT seq,
       1 + (seq * 7919) % 50000,
       ELT(1 + seq % 5, 'new', 'paid', 'shipped', 'delivered', 'cancelled'),
       ((seq * 104729) % 1000000) / 100,
       IF(seq % 10 = 0, NULL, CONCAT('order ', seq, ' of user ', 1 + (seq * 7919) % 50000)),
       TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq SECOND + INTERVAL (seq % 1000000) MICROSECOND
FROM seq_1_to_${ROWS};
CREATE TABLE orders_mirror LIKE orders;
INSERT INTO orders_mirror SELECT * FROM orders;
SQL
echo "loaded in $((SECONDS - t0)) s"

# --- the concurrent writer -------------------------------------------------------------
# One long-running mariadb client reads transactions from a bash loop. Every transaction
# applies the same change to orders and orders_mirror. Inserts use negative ids, which
# AUTO_INCREMENT never hands out, so both tables get the same id. --force keeps the client
# going after an error; errors go to writer.err and are counted at the end.
writer_sql() {
  local n=0 neg=0 op id amt st uid
  local statuses=(new paid shipped delivered cancelled refunded)
  while [ ! -e "$WORK/writer.stop" ]; do
    for _ in $(seq 1 "$BATCH"); do
      op=$((RANDOM % 100))
      amt="$((RANDOM % 100000)).$((RANDOM % 100))"
      st=${statuses[$((RANDOM % 6))]}
      if [ "$op" -lt 25 ]; then # insert
        neg=$((neg + 1))
        id=$((-neg))
        uid=$((1 + RANDOM % 50000))
        printf "START TRANSACTION;
INSERT INTO orders (id, user_id, status, amount, note, created_at) VALUES (%d, %d, '%s', %s, 'written during the migration %d', '2025-06-01 12:00:00.%06d');
INSERT INTO orders_mirror (id, user_id, status, amount, note, created_at) VALUES (%d, %d, '%s', %s, 'written during the migration %d', '2025-06-01 12:00:00.%06d');
COMMIT;\n" "$id" "$uid" "$st" "$amt" "$n" "$n" "$id" "$uid" "$st" "$amt" "$n" "$n"
      elif [ "$op" -lt 85 ]; then # update: mostly old rows, sometimes rows inserted now
        if [ "$neg" -gt 0 ] && [ $((RANDOM % 5)) -eq 0 ]; then
          id=$((-(1 + RANDOM % neg)))
        else
          id=$((1 + (RANDOM * 32768 + RANDOM) % ROWS))
        fi
        printf "START TRANSACTION;
UPDATE orders SET status = '%s', amount = %s, note = CONCAT('updated ', %d) WHERE id = %d;
UPDATE orders_mirror SET status = '%s', amount = %s, note = CONCAT('updated ', %d) WHERE id = %d;
COMMIT;\n" "$st" "$amt" "$n" "$id" "$st" "$amt" "$n" "$id"
      else # delete
        if [ "$neg" -gt 0 ] && [ $((RANDOM % 4)) -eq 0 ]; then
          id=$((-(1 + RANDOM % neg)))
        else
          id=$((1 + (RANDOM * 32768 + RANDOM) % ROWS))
        fi
        printf "START TRANSACTION;
DELETE FROM orders WHERE id = %d;
DELETE FROM orders_mirror WHERE id = %d;
COMMIT;\n" "$id" "$id"
      fi
      n=$((n + 1))
    done
    sleep 0.02
  done
  echo "$n" >"$WORK/writer.count"
}

step "starting the concurrent writer (inserts, updates, deletes on orders + orders_mirror)"
: >"$WORK/writer.err"
(
  writer_sql | db --force godwit_demo >/dev/null 2>"$WORK/writer.err"
) &
WRITER_PID=$!
sleep 3

step "godwit run (online ALTER while the writer keeps writing)"
ALTER="ADD COLUMN shipped_at DATETIME NULL, ADD INDEX idx_status (status)"
echo "$GODWIT run --url mysql://root@127.0.0.1:$MYSQL_PORT/godwit_demo --table orders \\"
echo "    --alter \"$ALTER\" --execute"
t0=$SECONDS
godwit_rc=0
"$GODWIT" run --url "mysql://root@127.0.0.1:$MYSQL_PORT/godwit_demo" --table orders \
  --alter "$ALTER" --execute || godwit_rc=$?
echo "godwit finished in $((SECONDS - t0)) s with exit code $godwit_rc"

step "writer keeps writing into the new table for 3 s, then stops"
sleep 3
touch "$WORK/writer.stop"
wait "$WRITER_PID" || true
WRITER_PID=""
writes=$(cat "$WORK/writer.count" 2>/dev/null || echo "?")
errors=$(grep -c '^ERROR' "$WORK/writer.err" || true)

step "verification"
checksum() {
  db -N godwit_demo -e "SELECT COUNT(*), BIT_XOR(CRC32(CONCAT_WS('#', id, user_id, status, amount, IFNULL(note, '<null>'), created_at))) FROM $1"
}
read -r n_orders c_orders < <(checksum orders)
read -r n_mirror c_mirror < <(checksum orders_mirror)
has_column=$(db -N godwit_demo -e "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='godwit_demo' AND TABLE_NAME='orders' AND COLUMN_NAME='shipped_at'")
has_index=$(db -N godwit_demo -e "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA='godwit_demo' AND TABLE_NAME='orders' AND INDEX_NAME='idx_status'")
new_rows=$(db -N godwit_demo -e "SELECT COUNT(*) FROM orders WHERE id < 0")
equal=no
if [ "$n_orders" = "$n_mirror" ] && [ "$c_orders" = "$c_mirror" ]; then equal=yes; fi
schema=no
if [ "$has_column" = 1 ] && [ "$has_index" -ge 1 ]; then schema=yes; fi

printf '%-34s %s\n' "godwit exit code:" "$godwit_rc"
printf '%-34s %s\n' "new schema (shipped_at, idx_status):" "$schema"
printf '%-34s rows %s, checksum %s\n' "orders:" "$n_orders" "$c_orders"
printf '%-34s rows %s, checksum %s\n' "orders_mirror:" "$n_mirror" "$c_mirror"
printf '%-34s %s\n' "rows inserted by the writer left:" "$new_rows"
printf '%-34s %s\n' "writer transactions:" "$writes"
printf '%-34s %s\n' "writer errors:" "$errors"
printf '%-34s %s\n' "equal:" "$equal"
if [ "$errors" -gt 0 ]; then
  echo "first writer errors:"; head -5 "$WORK/writer.err"
fi

if [ "$godwit_rc" -ne 0 ] || [ "$equal" != yes ] || [ "$schema" != yes ] || [ "$errors" -gt 0 ]; then
  echo "DEMO FAILED"
  exit 1
fi
echo "DEMO OK: the table was altered online and holds exactly the rows the application wrote."
