#!/usr/bin/env bash
# Runs the embedded default: a simulated tenant, a task against it, its first backup, and the
# DSM app and portal on http://127.0.0.1:8418/ (sign in as admin or portal, password
# backhome-demo). Extra arguments go to `backhome demo` (e.g. --listen 127.0.0.1:9000).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f ui/package.json ]; then
  if ! command -v npm >/dev/null; then
    echo "npm is needed to build the UI (apt-get install nodejs npm)" >&2
    exit 1
  fi
  [ -d ui/node_modules ] || npm ci --prefix ui --no-audit --no-fund
  npm run build --prefix ui >/dev/null
fi
exec cargo run --release --bin backhome -- demo --ui-dir ui/dist "$@"
