#!/usr/bin/env bash
# Builds the DSM packages: dist/Backhome-<arch>-<version>.spk for x86_64 and aarch64 (armv8) models.
#
#   spk/build.sh [--arch x86_64|aarch64|all] [--build-number N] [--out DIR] [--port PORT] [--bin FILE]
#                [--ui-dist DIR]
#
# The binary is a static musl build (cargo zigbuild, profile `spk`, no embedded simulator). The web UI
# (ui/dist) is built when ui/package.json exists. The result is reproducible: entries are sorted, owners
# and mtimes fixed, and every time stamp is SOURCE_DATE_EPOCH (the last commit's time by default); the
# compile itself carries no path of this machine (see "A reproducible compile" below), so a build of the
# same sources in another folder with another target dir gives the same bytes (spk/test/run.sh checks).
# Tools: run dev/setup-spk.sh once.
#
# --build-number defaults to the number of commits (DSM wants it to grow with every release); --port is
# the service's loopback port (default 8418), which the nginx snippet and the start script share.
# --bin packs an existing binary instead of building one (e.g. one built with `cross`, see Cross.toml);
# it needs a single --arch. --ui-dist packs an already built web UI (a folder with index.html) instead
# of building ui/ (the package tests repack dist/'s own UI this way).
set -euo pipefail
export LC_ALL=C

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# The loopback port of the service; nginx/backhome.conf and the scripts get it from here.
port=8418

arch=all
prebuilt=""
ui_prebuilt=""
build_number=""
out="$root/dist"
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) arch="${2:?--arch needs a value}"; shift 2 ;;
        --build-number) build_number="${2:?--build-number needs a value}"; shift 2 ;;
        --out) out="${2:?--out needs a value}"; shift 2 ;;
        --port) port="${2:?--port needs a value}"; shift 2 ;;
        --bin) prebuilt="${2:?--bin needs a value}"; shift 2 ;;
        --ui-dist) ui_prebuilt="${2:?--ui-dist needs a value}"; shift 2 ;;
        -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$arch" in
    x86_64 | aarch64) arches=("$arch") ;;
    all) arches=(x86_64 aarch64) ;;
    *) echo "build.sh: --arch must be x86_64, aarch64 or all, not '$arch'" >&2; exit 2 ;;
esac
if [ -n "$prebuilt" ] && { [ "$arch" = all ] || [ ! -x "$prebuilt" ]; }; then
    echo "build.sh: --bin needs one --arch and an executable file" >&2
    exit 2
fi

for tool in cargo-zigbuild tar gzip md5sum sha256sum python3 flock; do
    command -v "$tool" >/dev/null || { echo "build.sh: $tool is missing; run dev/setup-spk.sh" >&2; exit 1; }
done

# Version: the crate's version plus a build number that grows with every commit (DSM requires that).
cargo_version=$(python3 - <<'PY'
import tomllib
with open("Cargo.toml", "rb") as f:
    doc = tomllib.load(f)
package = doc.get("package", {})
version = package.get("version")
if not isinstance(version, str):
    version = doc["workspace"]["package"]["version"]
print(version)
PY
)
if [ -z "$build_number" ]; then
    build_number=$(git rev-list --count HEAD)
fi
case "$port" in "" | *[!0-9]*) echo "build.sh: --port must be a number" >&2; exit 2 ;; esac
case "$build_number" in "" | *[!0-9]*) echo "build.sh: --build-number must be a number" >&2; exit 2 ;; esac
version="$cargo_version-$build_number"
if [[ ! "$version" =~ ^[0-9]+(\.[0-9]+)*-[0-9]+$ ]]; then
    echo "build.sh: version '$version' does not fit DSM's X.Y.Z-BUILD format" >&2
    exit 1
fi
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
mkdir -p "$target_dir"
target_dir="$(cd "$target_dir" && pwd)"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
sysroot="$(rustc --print sysroot)"

# A reproducible compile: no path of this machine in the binary, so that the same sources built in
# another folder with another target dir give the same bytes (spk/test/run.sh checks this).
# - rustc writes source paths into panic locations and track_caller data: each of the source tree, the
#   target dir, the crate registry and the toolchain gets a fixed name (--remap-path-prefix). The flags
#   are the same for every build from this tree, so cargo's cache stays valid; cargo keeps RUSTFLAGS out
#   of -C metadata, so symbol hashes and type ids do not depend on them either.
# - OpenSSL's build (openssl-src) compiles its install folder, which lies in the target dir, into the
#   library as string constants (MODULESDIR, ENGINESDIR), and no compiler flag renames those. So cargo
#   sees the target dir under one fixed name, a symbolic link to the real one; builds on one machine take
#   turns with it (flock).
# - C code gets no prefix maps: they would land in OpenSSL's "compiler:" string instead; its __FILE__
#   names are relative to its build folder.
# - OpenSSL also writes a "built on" date, from SOURCE_DATE_EPOCH. For the compile that is the constant
#   0: the C libraries' build scripts watch the variable, so a date that moved with every commit would
#   rebuild all C code (and everything above it) at each commit, for nothing.
fixed_target=/tmp/backhome-spk-target
remap=(--remap-path-prefix="$root=/backhome" --remap-path-prefix="$fixed_target=/target"
    --remap-path-prefix="$cargo_home=/cargo" --remap-path-prefix="$sysroot=/rustc-sysroot")
for dir in "$root" "$cargo_home" "$sysroot"; do
    case "$dir" in *[[:space:]]*)
        echo "build.sh: '$dir' contains white space; the compiler flags cannot name it" >&2
        exit 1 ;;
    esac
done
if [ -n "${CARGO_ENCODED_RUSTFLAGS:-}" ]; then
    # Cargo prefers this form (flags separated by 0x1f) to RUSTFLAGS; add to it then.
    for flag in "${remap[@]}"; do
        CARGO_ENCODED_RUSTFLAGS="$CARGO_ENCODED_RUSTFLAGS"$'\x1f'"$flag"
    done
    export CARGO_ENCODED_RUSTFLAGS
else
    rustflags="${RUSTFLAGS:-}"
    for flag in "${remap[@]}"; do
        rustflags="${rustflags:+$rustflags }$flag"
    done
    export RUSTFLAGS="$rustflags"
fi

# cargo_fixed ARGS...: cargo with the target dir under its fixed name (see above).
cargo_fixed() {
    if [ -e "$fixed_target" ] && [ ! -L "$fixed_target" ]; then
        echo "build.sh: $fixed_target exists and is not a symbolic link; remove it" >&2
        return 1
    fi
    (
        flock 9
        ln -sfn "$target_dir" "$fixed_target"
        SOURCE_DATE_EPOCH=0 CARGO_TARGET_DIR="$fixed_target" cargo "$@"
    ) 9>"$fixed_target.lock"
}

# The same options for tar everywhere: sorted names, fixed owner, group, mode bits and mtime.
TAR_OPTS=(--sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner
    --format=gnu --no-acls --no-xattrs --no-selinux)

ui_dist=""
if [ -n "$ui_prebuilt" ]; then
    if [ ! -f "$ui_prebuilt/index.html" ]; then
        echo "build.sh: --ui-dist $ui_prebuilt has no index.html" >&2
        exit 2
    fi
    ui_dist="$(cd "$ui_prebuilt" && pwd)"
    echo "== web UI: packing $ui_dist"
elif [ -f ui/package.json ]; then
    echo "== web UI: npm ci && npm run build"
    if [ ! -f ui/node_modules/.package-lock.json ] || [ ui/package-lock.json -nt ui/node_modules/.package-lock.json ]; then
        npm ci --prefix ui --no-audit --no-fund
    fi
    npm run build --prefix ui
    [ -f ui/dist/index.html ] || { echo "build.sh: ui/dist/index.html was not built" >&2; exit 1; }
    ui_dist="$root/ui/dist"
else
    echo "== web UI: ui/package.json does not exist yet; the packages carry no web UI (only the API)"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
out="$(cd "$out" && pwd)"

for a in "${arches[@]}"; do
    case "$a" in
        x86_64) rust_target=x86_64-unknown-linux-musl; dsm_arch=x86_64 ;;
        aarch64) rust_target=aarch64-unknown-linux-musl; dsm_arch=armv8 ;;
    esac
    if [ -n "$prebuilt" ]; then
        bin="$prebuilt"
        echo "== $a: packing $bin ($(stat -c %s "$bin") bytes)"
    else
        echo "== $a: cargo zigbuild --profile spk --target $rust_target"
        start=$(date +%s)
        cargo_fixed zigbuild --locked --profile spk --target "$rust_target" -p backhome --bin backhome \
            --no-default-features --features vendored-openssl
        bin="$target_dir/$rust_target/spk/backhome"
        echo "   built in $(($(date +%s) - start)) s: $bin ($(stat -c %s "$bin") bytes)"
    fi

    # The payload: target/ on the NAS.
    pkg="$work/$a/package"
    mkdir -p "$pkg/bin" "$pkg/app" "$pkg/nginx"
    install -m 755 "$bin" "$pkg/bin/backhome"
    if [ -n "$ui_dist" ]; then
        cp -r "$ui_dist" "$pkg/ui"
    fi
    # The DSM desktop integration (dsmuidir="app"): app registrations, the script that defines the apps'
    # windows (an iframe onto the web UI under /backhome/) and their icons.
    cp ui/config "$pkg/app/config"
    cp ui/dsm/*.js "$pkg/app/"
    cp -r ui/images "$pkg/app/images"
    sed "s/@PORT@/$port/g" spk/nginx/backhome.conf >"$pkg/nginx/backhome.conf"
    find "$pkg" -type d -exec chmod 755 {} +
    find "$pkg" -type f ! -path "$pkg/bin/*" -exec chmod 644 {} +

    # The .spk's top level.
    spk="$work/$a/spk"
    mkdir -p "$spk/scripts" "$spk/conf" "$spk/WIZARD_UIFILES"
    (cd "$pkg" && tar "${TAR_OPTS[@]}" -cf - -- *) | gzip -9 -n >"$spk/package.tgz"
    for f in scripts/*; do
        sed "s/@PORT@/$port/g" "$f" >"$spk/scripts/$(basename "$f")"
    done
    chmod 755 "$spk"/scripts/*
    cp conf/privilege conf/resource "$spk/conf/"
    cp spk/WIZARD_UIFILES/* "$spk/WIZARD_UIFILES/"
    chmod 644 "$spk"/conf/* "$spk"/WIZARD_UIFILES/*
    chmod 755 "$spk"/WIZARD_UIFILES/*.sh
    install -m 644 spk/icons/PACKAGE_ICON.PNG spk/icons/PACKAGE_ICON_256.PNG "$spk/"
    # The files' bytes only: du would add the folders' sizes, which depend on the file system of $work.
    extract_kb=$(find "$pkg" -type f -printf '%s\n' | awk '{ n += $1 } END { printf "%d\n", (n + 1023) / 1024 }')
    {
        sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$dsm_arch/" INFO
        echo "extractsize=\"$extract_kb\""
        echo "checksum=\"$(md5sum "$spk/package.tgz" | cut -d' ' -f1)\""
        echo "create_time=\"$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d-%H:%M:%S)\""
    } >"$spk/INFO"
    chmod 644 "$spk/INFO" "$spk/package.tgz"
    if grep -q '@[A-Z]*@' "$spk/INFO"; then
        echo "build.sh: INFO still has a placeholder" >&2
        exit 1
    fi

    file="$out/Backhome-$a-$version.spk"
    (cd "$spk" && tar "${TAR_OPTS[@]}" -cf "$file.tmp" -- *)
    mv -f "$file.tmp" "$file"
    echo "   $file"
    echo "   $(stat -c %s "$file") bytes, sha256 $(sha256sum "$file" | cut -d' ' -f1)"
done
