#!/usr/bin/env bash
# Installs what `spk/build.sh` and the package tests need on a fresh Debian machine:
# the musl Rust targets, zig (from PyPI) and cargo-zigbuild, and a few Debian packages.
# Idempotent and quick when everything is already there.
set -euo pipefail

ZIG_VERSION=0.15.2

need_apt=()
# nginx-light: the harness runs DSM-like nginx; qemu-user-static: runs the aarch64 binary;
# passwd: useradd/userdel; file: checks the binaries are static; procps: ps for RSS;
# chromium: opens the DSM desktop apps (spk/test/desktop.mjs, with ui/node_modules' playwright-core).
for pkg in nginx-light qemu-user-static passwd file procps curl python3-pip chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup-spk: missing Debian packages (${need_apt[*]}); run as root to install them" >&2
    exit 1
  fi
  echo "setup-spk: installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

installed_targets=$(rustup target list --installed)
for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  if ! grep -qx "$target" <<<"$installed_targets"; then
    echo "setup-spk: adding Rust target $target"
    rustup target add "$target"
  fi
done

# cargo-zigbuild finds zig through `python3 -m ziglang` when no zig is on PATH.
if [ "$(python3 -m ziglang version 2>/dev/null || true)" != "$ZIG_VERSION" ]; then
  echo "setup-spk: installing ziglang==$ZIG_VERSION"
  pip_args=(--quiet --disable-pip-version-check)
  # Debian's own python3 refuses system-wide pip installs unless told otherwise.
  if python3 -m pip install --help 2>/dev/null | grep -q -- --break-system-packages; then
    pip_args+=(--break-system-packages)
  fi
  python3 -m pip install "${pip_args[@]}" "ziglang==$ZIG_VERSION"
fi

if ! command -v cargo-zigbuild >/dev/null 2>&1; then
  echo "setup-spk: installing cargo-zigbuild"
  cargo install --locked --quiet cargo-zigbuild
fi
