#!/usr/bin/env bash
# System packages the checks need that pip cannot provide, installed with apt when missing (root needed then):
# - Debian's chromium: the browser test drives it with Playwright (nothing downloads a browser);
# - Docker Compose, so that `docker compose config` can check docker-compose.yml (no engine needed for that).
#   Debian 12 packages Compose v1 (`docker-compose` 1.29) only; where no `docker compose` plugin exists, a small
#   CLI-plugin shim in /usr/local/lib/docker/cli-plugins hands `docker compose ...` to it. Debian 13's
#   docker-compose package (v2) installs a real plugin, and then no shim is written.
set -euo pipefail

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "packages.sh: please install ${missing[*]} (Debian: apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
  echo "packages.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if command -v docker >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
  plugin_dir=/usr/local/lib/docker/cli-plugins
  if [ "$(id -u)" -ne 0 ]; then plugin_dir="$HOME/.docker/cli-plugins"; fi
  mkdir -p "$plugin_dir"
  cat > "$plugin_dir/docker-compose" <<'SHIM'
#!/bin/sh
# Docker CLI plugin shim (written by whisper-service's .ci/packages.sh): `docker compose ...` -> docker-compose v1.
if [ "$1" = "docker-cli-plugin-metadata" ]; then
  echo '{"SchemaVersion":"0.1.0","Vendor":"Debian","Version":"1.29.2","ShortDescription":"Docker Compose (v1 via shim)"}'
  exit 0
fi
[ "$1" = "compose" ] && shift
exec docker-compose "$@"
SHIM
  chmod +x "$plugin_dir/docker-compose"
fi
