#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need,
# builds the package, then runs every test with node:test.
set -euo pipefail
cd "$(dirname "$0")/.."

# npm packages (ws, fast-check, tsx, ...): install when missing or stale.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

npm run build
npx tsc --noEmit -p tsconfig.json

shopt -s nullglob globstar
files=(test/protocol/**/*.test.ts test/node/**/*.test.ts test/interop/**/*.test.ts)
if [ "$#" -gt 0 ]; then files=("$@"); fi
exec node --import tsx --test --test-concurrency=2 --test-timeout=60000 "${files[@]}"
