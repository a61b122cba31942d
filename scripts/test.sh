#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need,
# builds the package, then runs every test with node:test.
set -euo pipefail
cd "$(dirname "$0")/.."

# npm packages (ws, fast-check, tsx, ...): install when missing or stale.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

# Debian packages for the interop peers and the scale tests (we are root on CI
# machines): redis-server (redis-server), redis-cli (redis-tools), nginx (nginx).
apt_pkgs=()
if ! /usr/bin/python3 -c 'import websockets' >/dev/null 2>&1; then apt_pkgs+=(python3 python3-websockets); fi
if ! command -v redis-server >/dev/null 2>&1; then apt_pkgs+=(redis-server); fi
if ! command -v redis-cli >/dev/null 2>&1; then apt_pkgs+=(redis-tools); fi
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then apt_pkgs+=(nginx); fi
if [ ! -x /usr/bin/chromium ]; then apt_pkgs+=(chromium fonts-liberation); fi
if [ "${#apt_pkgs[@]}" -gt 0 ]; then
  echo "test.sh: installing Debian packages: ${apt_pkgs[*]}"
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
  else
    echo "test.sh: not root: install ${apt_pkgs[*]} yourself; the interop tests that need them will fail" >&2
  fi
fi

npm run build
npx tsc --noEmit -p tsconfig.json

shopt -s nullglob globstar
files=(test/protocol/**/*.test.ts test/node/**/*.test.ts test/interop/**/*.test.ts test/scale/**/*.test.ts)
if [ "$#" -gt 0 ]; then files=("$@"); fi
exec node --import tsx --test --test-concurrency=2 --test-timeout=180000 "${files[@]}"
