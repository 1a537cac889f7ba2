#!/usr/bin/env bash
# The .spk tests: builds both packages (spk/build.sh; cargo does nothing when the binaries are fresh)
# and the simulator, then runs the Package Center harness (spk/test/harness.py), then builds the x86_64
# package a second time from a copy of the sources in another folder with an empty target dir and checks
# that both packages are the same bytes (a reproducible compile, not only a reproducible packing).
# Exits non-zero with a message on the first failed check. Needs root for the package user and the
# btrfs volume (CI runs it as root); without root the scripts run as the current user.
#
# BACKHOME_REPRO_TARGET_DIR names the empty target dir of the second build (default: a temporary one);
# it is deleted afterwards either way, since a second release build takes about 1 GB.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
began=$(date +%s)

bash dev/setup-spk.sh

build_number=$(git rev-list --count HEAD)
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}"

# The sources of the second build, copied before the first one starts: the files git knows of (tracked,
# and untracked ones that are not ignored), as they are in the working tree. In CI that is the commit.
repro=$(mktemp -d "${TMPDIR:-/tmp}/backhome-repro.XXXXXX")
repro_target="${BACKHOME_REPRO_TARGET_DIR:-$repro/target}"
if [ -e "$repro_target" ] && [ -n "$(ls -A "$repro_target")" ]; then
    echo "run.sh: $repro_target is not empty; the second build needs an empty target dir" >&2
    exit 1
fi
trap 'rm -rf "$repro" "$repro_target"' EXIT
mkdir -p "$repro/backhome"
git ls-files -z --cached --others --exclude-standard |
    tar --null -T - -cf - | tar -xf - -C "$repro/backhome"
if [ -n "$(git status --porcelain)" ]; then
    echo "== note: the working tree has uncommitted changes; both builds use them"
fi

echo "== spk/build.sh --arch all (build $build_number)"
bash spk/build.sh --arch all --build-number "$build_number" --out dist

echo "== graph-sim for the host"
# The simulator binary the Rust tests use (same arguments as dev/test.sh's `cargo test`, so no work
# after it).
cargo test --locked --workspace --lib --bins --tests --no-run --quiet
graph_sim="${CARGO_TARGET_DIR:-$root/target}/debug/graph-sim"

python3 spk/test/harness.py --dist dist --graph-sim "$graph_sim" --build-number "$build_number" \
    --figures "$repro/figures.txt"

first=$(ls dist/Backhome-x86_64-*-"$build_number".spk)
echo "== reproducible compile: x86_64 again in $repro/backhome, target dir $repro_target"
# The web UI's dependencies as they are (npm ci would fetch the same versions again).
if [ -d ui/node_modules ]; then
    cp -a ui/node_modules "$repro/backhome/ui/node_modules"
fi
started=$(date +%s)
(cd "$repro/backhome" && CARGO_TARGET_DIR="$repro_target" bash spk/build.sh --arch x86_64 \
    --build-number "$build_number" --out "$repro/dist") >"$repro/build.log" 2>&1 || {
    tail -n 40 "$repro/build.log"
    echo "run.sh: the second build failed" >&2
    exit 1
}
second="$repro/dist/$(basename "$first")"
sum_first=$(sha256sum "$first" | cut -d' ' -f1)
sum_second=$(sha256sum "$second" | cut -d' ' -f1)
echo "  $sum_first  $first"
echo "  $sum_second  $second (built in $(($(date +%s) - started)) s)"
if [ "$sum_first" != "$sum_second" ]; then
    python3 spk/test/spkdiff.py "$first" "$second" || true
    echo "FAILED: two builds of the same sources differ" >&2
    exit 1
fi
echo "  the same bytes: the compile, the web UI, INFO and both archives are reproducible"

echo "== figures"
cat "$repro/figures.txt"
for f in dist/Backhome-*-"$build_number".spk; do
    echo "  $(basename "$f"): $(stat -c %s "$f") bytes, sha256 $(sha256sum "$f" | cut -d' ' -f1)"
done
echo "== spk/test/run.sh took $(($(date +%s) - began)) s"
