#!/usr/bin/env bash
# What the test suite needs besides Python packages: PostgreSQL on 127.0.0.1:5432 (trust
# authentication for local test databases), Redis on 127.0.0.1:6379, and Debian's
# prometheus/promtool; nftables and faketime for the multi-host fault tests (tests/faults/
# test_hosts.py: lossy links and partitions from one server, hosts with their clocks off).
# Each is installed and started only when missing, so this is a no-op
# on a machine that already runs them. Run by `make test` and `.ci/run`.
set -euo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() { for _ in $(seq 100); do listening "$1" && return 0; sleep 0.1; done; echo "port $1 did not open" >&2; return 1; }
updated=0
apt_install() {
  if [ "$updated" = 0 ]; then apt-get update -qq; updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

if ! listening 6379; then
  command -v redis-server >/dev/null || apt_install redis-server
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  wait_for 6379
fi

if ! listening 5432; then
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
  if [ -z "$version" ]; then
    version=$(ls /usr/lib/postgresql | sort -V | tail -1)
    pg_createcluster "$version" main
  fi
  conf=/etc/postgresql/$version/main
  # Loopback only, trust for local connections: the tests create and drop their databases.
  grep -q "^host all all 127.0.0.1/32 trust" "$conf/pg_hba.conf" \
    || sed -i '1i host all all 127.0.0.1/32 trust' "$conf/pg_hba.conf"
  pg_ctlcluster "$version" main start || pg_ctlcluster "$version" main restart
  wait_for 5432
fi

command -v promtool >/dev/null || apt_install prometheus
command -v nft >/dev/null || apt_install nftables
command -v faketime >/dev/null || apt_install faketime
