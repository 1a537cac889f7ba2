#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine: system packages, Rust targets and tools.
# Idempotent: what is already there is not installed again.
set -euo pipefail

need_apt=()
for pkg in btrfs-progs e2fsprogs restic nginx-light qemu-user-static musl-tools chromium python3-venv unzip; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages (${need_apt[*]}); run as root to install them" >&2
    exit 1
  fi
  echo "setup: installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# The store's SQLCipher catalog (encrypted repositories) and the openssl crate build against the
# system's OpenSSL (libcrypto), found through pkg-config; a C compiler builds SQLCipher.
need_dev=()
for pkg in libssl-dev pkg-config gcc; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_dev+=("$pkg")
done
if [ ${#need_dev[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages (${need_dev[*]}); run as root to install them" >&2
    exit 1
  fi
  echo "setup: installing ${need_dev[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_dev[@]}" >/dev/null
fi
