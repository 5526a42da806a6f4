#!/usr/bin/env bash
# Private database servers on loopback for tests and the demo.
# Source this file, then call ensure_packages, start_mariadb, start_postgres, stop_servers.

GODWIT_RUN_DIR="${GODWIT_RUN_DIR:-$(mktemp -d /tmp/godwit-servers.XXXXXX)}"
mkdir -p "$GODWIT_RUN_DIR" && chmod 755 "$GODWIT_RUN_DIR"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

ensure_packages() {
  local need=()
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
  [ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

# Starts MariaDB with the binlog settings godwit needs; exports GODWIT_TEST_MYSQL_URL
# (root, no password, on a free loopback port) and MYSQL_PORT.
start_mariadb() {
  local dir="$GODWIT_RUN_DIR/mariadb"
  MYSQL_PORT=$(free_port)
  local mysqld=/usr/sbin/mariadbd
  install_mariadb "$dir" || return 1
  local binlog=(--log-bin="$dir/data/binlog" --binlog-format=ROW --binlog-row-image=FULL)
  # GODWIT_MARIADB_NO_BINLOG=1: a server without binary logging (preflight tests).
  [ -n "${GODWIT_MARIADB_NO_BINLOG:-}" ] && binlog=()
  # The command line is kept so that tests can restart the server (restart_mariadb).
  printf '%q ' "$mysqld" --no-defaults --user="$(id -un)" --datadir="$dir/data" \
    --socket="$dir/mysqld.sock" --pid-file="$dir/mysqld.pid" --tmpdir="$dir/tmp" \
    --port="$MYSQL_PORT" --bind-address=127.0.0.1 \
    "${binlog[@]}" \
    --server-id=1 --event-scheduler=ON \
    --innodb-buffer-pool-size="${GODWIT_MARIADB_BUFFER_POOL:-1G}" \
    --innodb-flush-log-at-trx-commit=2 --sync-binlog=0 \
    --max-connections=500 --skip-name-resolve \
    --log-error="$dir/error.log" >"$dir/command"
  launch_mariadb "$dir"
  for _ in $(seq 1 120); do
    if mariadb --no-defaults -uroot -h127.0.0.1 -P"$MYSQL_PORT" -e 'SELECT 1' >/dev/null 2>&1; then
      # root over TCP from 127.0.0.1 (skip-name-resolve: grant the address too)
      mariadb --no-defaults -uroot -h127.0.0.1 -P"$MYSQL_PORT" -e \
        "CREATE DATABASE IF NOT EXISTS godwit_demo" >/dev/null 2>&1
      export GODWIT_TEST_MYSQL_URL="mysql://root@127.0.0.1:$MYSQL_PORT/mysql"
      export MYSQL_PORT
      return 0
    fi
    sleep 0.5
  done
  echo "MariaDB did not start; log:"; tail -30 "$dir/error.log"
  return 1
}

# Creates the data directory $1/data, and $1/tmp: every server has a temporary directory
# of its own, because bootstraps run at the same moment with a shared /tmp collide on
# their temporary table files ("Unknown table 'mysql.tmp_user_sys'").
install_mariadb() {
  local dir="$1"
  mkdir -p "$dir/tmp"
  TMPDIR="$dir/tmp" mariadb-install-db --no-defaults --datadir="$dir/data" --user="$(id -un)" \
    --tmpdir="$dir/tmp" \
    --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 \
    || { cat "$dir/install.log"; return 1; }
}

launch_mariadb() {
  local dir="$1"
  bash -c "exec $(cat "$dir/command")" >/dev/null 2>&1 &
  echo $! >"$dir/launcher.pid"
}

# Restarts the MariaDB of run directory $1 (tests: a server restart mid-migration):
# a clean shutdown, then the same command line; waits until it answers again.
restart_mariadb() {
  local dir="$1/mariadb" port
  port=$(grep -o -- '--port=[0-9]*' "$dir/command" | cut -d= -f2)
  local pid
  pid=$(cat "$dir/mysqld.pid")
  kill "$pid"
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  launch_mariadb "$dir"
  for _ in $(seq 1 120); do
    mariadb --no-defaults -uroot -h127.0.0.1 -P"$port" -e 'SELECT 1' >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  echo "MariaDB did not restart"; tail -30 "$dir/error.log"; return 1
}

# Restarts the PostgreSQL of run directory $1 (fast shutdown: sessions are terminated).
restart_postgres() {
  local dir="$1/postgres" as=()
  [ "$(id -u)" = 0 ] && as=(runuser -u "${PG_AS_USER:-godwitpg}" --)
  "${as[@]}" /usr/lib/postgresql/15/bin/pg_ctl -D "$dir/data" -l "$dir/server.log" -m fast -w -t 60 restart >/dev/null
}

# Starts PostgreSQL 15 (wal_level=logical) as an unprivileged user; exports
# GODWIT_TEST_POSTGRES_URL (user postgres, no password) and PG_PORT.
start_postgres() {
  local bin=/usr/lib/postgresql/15/bin
  local dir="$GODWIT_RUN_DIR/postgres"
  local user=godwitpg
  if [ "$(id -u)" = 0 ]; then
    id -u "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
  else
    user="$(id -un)"
  fi
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown "$user" "$dir"
  PG_PORT=$(free_port)
  local as=()
  [ "$(id -u)" = 0 ] && as=(runuser -u "$user" --)
  "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log"; return 1; }
  cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$dir'
wal_level = ${GODWIT_PG_WAL_LEVEL:-logical}
max_replication_slots = ${GODWIT_PG_MAX_SLOTS:-40}
max_wal_senders = 20
max_connections = 300
shared_buffers = ${GODWIT_PG_SHARED_BUFFERS:-512MB}
synchronous_commit = off
fsync = off
full_page_writes = off
CONF
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || { tail -30 "$dir/server.log"; return 1; }
  export GODWIT_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  export PG_PORT
  PG_AS_USER="$user"
}

stop_servers() {
  local dir="$GODWIT_RUN_DIR"
  for m in mariadb mariadb-replica; do
    if [ -f "$dir/$m/mysqld.pid" ]; then
      kill "$(cat "$dir/$m/mysqld.pid")" 2>/dev/null || true
    fi
  done
  if [ -d "$dir/postgres-standby/data" ]; then
    local as=()
    [ "$(id -u)" = 0 ] && as=(runuser -u "${PG_AS_USER:-godwitpg}" --)
    "${as[@]}" /usr/lib/postgresql/15/bin/pg_ctl -D "$dir/postgres-standby/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  if [ -d "$dir/postgres/data" ]; then
    local as=()
    [ "$(id -u)" = 0 ] && as=(runuser -u "${PG_AS_USER:-godwitpg}" --)
    "${as[@]}" /usr/lib/postgresql/15/bin/pg_ctl -D "$dir/postgres/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  sleep 1
  rm -rf "$dir"
}

# Starts a MariaDB replica of the MariaDB of this run directory (start_mariadb first):
# its own datadir and port, server_id 2, GTID replication from the primary's first
# binlog, report_host/report_port set (so that SHOW SLAVE HOSTS on the primary lists
# it). Exports MYSQL_REPLICA_PORT. Tests of replica lag only (tests/replica_lag.rs).
start_mariadb_replica() {
  local dir="$GODWIT_RUN_DIR/mariadb-replica"
  mkdir -p "$dir"
  MYSQL_REPLICA_PORT=$(free_port)
  install_mariadb "$dir" || return 1
  printf '%q ' /usr/sbin/mariadbd --no-defaults --user="$(id -un)" --datadir="$dir/data" \
    --socket="$dir/mysqld.sock" --pid-file="$dir/mysqld.pid" --tmpdir="$dir/tmp" \
    --port="$MYSQL_REPLICA_PORT" --bind-address=127.0.0.1 \
    --server-id=2 --report-host=127.0.0.1 --report-port="$MYSQL_REPLICA_PORT" \
    --innodb-buffer-pool-size="${GODWIT_MARIADB_BUFFER_POOL:-128M}" \
    --innodb-flush-log-at-trx-commit=2 --skip-name-resolve \
    --log-error="$dir/error.log" >"$dir/command"
  launch_mariadb "$dir"
  local ok=
  for _ in $(seq 1 120); do
    if mariadb --no-defaults -uroot -h127.0.0.1 -P"$MYSQL_REPLICA_PORT" -e 'SELECT 1' >/dev/null 2>&1; then
      ok=1; break
    fi
    sleep 0.5
  done
  [ -n "$ok" ] || { echo "MariaDB replica did not start; log:"; tail -30 "$dir/error.log"; return 1; }
  mariadb --no-defaults -uroot -h127.0.0.1 -P"$MYSQL_REPLICA_PORT" -e \
    "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$MYSQL_PORT, MASTER_USER='root', MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos; START SLAVE;" \
    || return 1
  export MYSQL_REPLICA_PORT
}

# Starts a PostgreSQL streaming standby of the PostgreSQL of this run directory
# (start_postgres first, in the same shell): pg_basebackup -R, its own port, hot_standby.
# Exports PG_STANDBY_PORT. Tests of replica lag only (tests/replica_lag.rs).
start_postgres_standby() {
  local bin=/usr/lib/postgresql/15/bin
  local dir="$GODWIT_RUN_DIR/postgres-standby"
  local user="${PG_AS_USER:-$(id -un)}" as=()
  [ "$(id -u)" = 0 ] && as=(runuser -u "$user" --)
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown "$user" "$dir"
  PG_STANDBY_PORT=$(free_port)
  "${as[@]}" "$bin/pg_basebackup" -h 127.0.0.1 -p "$PG_PORT" -U postgres -D "$dir/data" -R -X stream \
    >"$dir/basebackup.log" 2>&1 || { cat "$dir/basebackup.log"; return 1; }
  "${as[@]}" bash -c "cat >>'$dir/data/postgresql.conf'" <<CONF
port = $PG_STANDBY_PORT
unix_socket_directories = '$dir'
hot_standby = on
shared_buffers = 64MB
cluster_name = 'godwit_standby'
CONF
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || { tail -30 "$dir/server.log"; return 1; }
  export PG_STANDBY_PORT
}
