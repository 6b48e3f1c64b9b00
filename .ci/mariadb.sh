#!/usr/bin/env bash
# Make sure a MariaDB server answers on 127.0.0.1:3306 with root and no password, that database `test` exists, and
# that the test user `whisper` (password `ws-test-p@ss`, see tests/conftest.py) may create and use `test` and every
# `ws_test_*` database: the tests connect with a password, as every real deployment does. Installs (Debian's
# mariadb-server) and starts one when the port is closed. Exits non-zero if it cannot: the MySQL tests must fail,
# never skip, without a server.
set -euo pipefail

port_open() { (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null; }

if ! port_open; then
  if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
    echo "mariadb.sh: installing mariadb-server" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq mariadb-server >/dev/null
  fi
  echo "mariadb.sh: starting mariadbd" >&2
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  if [ ! -d /var/lib/mysql/mysql ]; then
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
  fi
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql \
    --bind-address=127.0.0.1 --port=3306
  for _ in $(seq 1 60); do
    port_open && break
    sleep 1
  done
fi
port_open || { echo "mariadb.sh: no MariaDB on 127.0.0.1:3306" >&2; exit 1; }

TEST_USER_SQL="CREATE DATABASE IF NOT EXISTS test;
CREATE USER IF NOT EXISTS 'whisper'@'127.0.0.1' IDENTIFIED BY 'ws-test-p@ss';
CREATE USER IF NOT EXISTS 'whisper'@'localhost' IDENTIFIED BY 'ws-test-p@ss';
ALTER USER 'whisper'@'127.0.0.1' IDENTIFIED BY 'ws-test-p@ss';
ALTER USER 'whisper'@'localhost' IDENTIFIED BY 'ws-test-p@ss';
GRANT ALL PRIVILEGES ON \`test\`.* TO 'whisper'@'127.0.0.1', 'whisper'@'localhost';
GRANT ALL PRIVILEGES ON \`ws\\_test\\_%\`.* TO 'whisper'@'127.0.0.1', 'whisper'@'localhost';"

for _ in $(seq 1 30); do
  mariadb -h 127.0.0.1 -P 3306 -u root -e "$TEST_USER_SQL" 2>/dev/null && exit 0
  # A fresh install lets root in only through the socket: allow the empty password over TCP as CI expects.
  mariadb -u root -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket; CREATE DATABASE IF NOT EXISTS test" 2>/dev/null || true
  sleep 1
done
echo "mariadb.sh: MariaDB answers but root cannot log in over TCP" >&2
exit 1
