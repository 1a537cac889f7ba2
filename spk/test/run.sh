#!/usr/bin/env bash
# The .spk tests: builds both packages (spk/build.sh; cargo does nothing when the binaries are fresh)
# and the simulator, then runs the Package Center harness (spk/test/harness.py).
# Exits non-zero with a message on the first failed check. Needs root for the package user and the
# btrfs volume (CI runs it as root); without root the scripts run as the current user.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
began=$(date +%s)

bash dev/setup-spk.sh

build_number=$(git rev-list --count HEAD)
echo "== spk/build.sh --arch all (build $build_number)"
bash spk/build.sh --arch all --build-number "$build_number" --out dist

echo "== graph-sim for the host"
cargo build --locked --quiet -p graph-sim --bin graph-sim
graph_sim="${CARGO_TARGET_DIR:-$root/target}/debug/graph-sim"

python3 spk/test/harness.py --dist dist --graph-sim "$graph_sim" --build-number "$build_number"
echo "== spk/test/run.sh took $(($(date +%s) - began)) s"
