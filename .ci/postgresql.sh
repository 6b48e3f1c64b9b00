#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432, that database `test` exists, and that the test user
# `whisper` (password `ws-test-p@ss`, see tests/conftest.py) may log in and create databases: the tests connect with
# a password, as every real deployment does. Installs (Debian's postgresql) and starts one when the port is closed.
# Exits non-zero if it cannot: the PostgreSQL tests must fail, never skip, without a server.
set -euo pipefail

port_open() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }

if ! port_open; then
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    echo "postgresql.sh: installing postgresql" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
  fi
  version=$(ls /usr/lib/postgresql | sort -V | tail -1)
  if [ ! -d "/etc/postgresql/$version/main" ]; then
    pg_createcluster "$version" main >/dev/null
  fi
  echo "postgresql.sh: starting PostgreSQL $version" >&2
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 60); do
    port_open && break
    sleep 1
  done
fi
port_open || { echo "postgresql.sh: no PostgreSQL on 127.0.0.1:5432" >&2; exit 1; }

# As the server's superuser: over the socket as the postgres system user (Debian's peer auth), else over TCP (trust).
as_superuser() {
  if [ "$(id -u)" -eq 0 ] && id postgres >/dev/null 2>&1; then
    runuser -u postgres -- psql -v ON_ERROR_STOP=1 -q "$@"
  else
    psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -q "$@"
  fi
}

for _ in $(seq 1 30); do
  if as_superuser -d postgres <<'SQL' 2>/dev/null
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'whisper') THEN CREATE ROLE whisper LOGIN; END IF;
END $$;
ALTER ROLE whisper LOGIN CREATEDB PASSWORD 'ws-test-p@ss';
SELECT 'CREATE DATABASE test' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'test')\gexec
SQL
  then
    exit 0
  fi
  sleep 1
done
echo "postgresql.sh: PostgreSQL answers but its superuser cannot log in" >&2
exit 1
