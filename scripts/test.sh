#!/usr/bin/env bash
# Runs godwit's whole test suite against private MariaDB and PostgreSQL servers on
# loopback. Installs the server packages when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/servers.sh
trap stop_servers EXIT

ensure_packages
start_mariadb
echo "MariaDB: $GODWIT_TEST_MYSQL_URL"
start_postgres
echo "PostgreSQL: $GODWIT_TEST_POSTGRES_URL"

export RUST_BACKTRACE=1
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo build --all-targets
# Benches are criterion binaries: built here, run with `cargo bench`.
cargo test --lib --bins --tests -- --test-threads="${GODWIT_TEST_THREADS:-4}"
