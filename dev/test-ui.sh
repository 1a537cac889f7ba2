#!/usr/bin/env bash
# The UI's checks: dependencies (npm ci), type checks (tsc, svelte-check), unit tests, build, the gzipped bundle size
# (at most 300 KB), the backhome binary, then the end-to-end tests in Debian's Chromium against
# `backhome demo`. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
limit_kb=300

for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "test-ui: $tool is missing (Node 20 and npm are needed)" >&2; exit 1; }
done
[ -x /usr/bin/chromium ] || { echo "test-ui: /usr/bin/chromium is missing (dev/setup.sh installs it)" >&2; exit 1; }

cd ui
npm ci --no-audit --no-fund --loglevel=error
npx tsc --noEmit -p tsconfig.json
npx svelte-check --tsconfig ./tsconfig.json --threshold warning --fail-on-warnings
npx vitest run
npx vite build --logLevel warn

# The gzipped size of everything the browser loads.
total=0
for f in dist/index.html dist/assets/*; do
  n=$(gzip -9 -c "$f" | wc -c)
  total=$((total + n))
done
kb=$(( (total + 1023) / 1024 ))
echo "test-ui: gzipped bundle ${kb} KB (limit ${limit_kb} KB)"
[ "$kb" -le "$limit_kb" ] || { echo "test-ui: the bundle is larger than ${limit_kb} KB" >&2; exit 1; }

cd "$root"
# The binary the Rust integration tests use: built with the same arguments (and so the same
# features) as dev/test.sh's `cargo test`, so after it this is no work at all.
cargo test --workspace --lib --bins --tests --no-run --quiet
target_dir=${CARGO_TARGET_DIR:-$root/target}
start=$(date +%s)
# Screenshots go to a temporary folder; UPDATE_SCREENSHOTS=1 refreshes docs/screenshots/.
node ui/e2e/run.mjs --bin "$target_dir/debug/backhome"
echo "test-ui: end-to-end tests took $(( $(date +%s) - start )) s"
