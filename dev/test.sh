#!/usr/bin/env bash
# Runs every test of the project. Installs what the tests need first (dev/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash dev/setup.sh
# Tests that need root (loop-mounted btrfs and ext4 images) must run, not skip, when we are root.
if [ "$(id -u)" -eq 0 ]; then export BACKHOME_ROOT_TESTS=1; fi
# Test builds keep line tables (file and line in panics and backtraces) but not full debug info,
# which costs compile and link time in every test binary; no incremental cache unless asked for.
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# Benchmarks print figures and are run by `cargo bench`; here they are only built (by clippy in CI).
cargo test --workspace --lib --bins --tests
cargo test --workspace --doc
bash dev/test-ui.sh
bash spk/test/run.sh
