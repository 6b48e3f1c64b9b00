#!/usr/bin/env bash
# System packages the tests need that pip cannot provide: Debian's chromium (the browser test drives it with
# Playwright; nothing downloads a browser). Installs them with apt when missing; fails loudly when it cannot.
set -euo pipefail

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)

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
