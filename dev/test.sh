#!/usr/bin/env bash
# Runs every test of the project. Installs what the tests need first (dev/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash dev/setup.sh
# Tests that need root (loop-mounted btrfs and ext4 images) must run, not skip, when we are root.
if [ "$(id -u)" -eq 0 ]; then export BACKHOME_ROOT_TESTS=1; fi
# Benchmarks print figures and are run by `cargo bench`; here they are only built (by clippy in CI).
cargo test --workspace --lib --bins --tests
cargo test --workspace --doc
bash dev/test-ui.sh
bash spk/test/run.sh
