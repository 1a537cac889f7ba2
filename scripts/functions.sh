# shellcheck shell=sh disable=SC2034
# Shared by Backhome's package scripts (sourced, not run). DSM 7 runs every script as the package's own
# user (conf/privilege: run-as package) with the SYNOPKG_* variables set.
# Standard output of a script is shown in Package Center only through $SYNOPKG_TEMP_LOGFILE (message);
# standard error goes to the package log (/var/log/packages/Backhome.log).

PATH="$PATH:/sbin:/usr/sbin"
PKG_NAME="${SYNOPKG_PKGNAME:-Backhome}"
# /var/packages/<package>; the package tests point it into a throwaway root.
PKG_ROOT="${BACKHOME_PKG_ROOT:-/var/packages/$PKG_NAME}"
PKG_DEST="${SYNOPKG_PKGDEST:-$PKG_ROOT/target}"
PKG_VAR="${SYNOPKG_PKGVAR:-$PKG_ROOT/var}"
PKG_TMP="${SYNOPKG_PKGTMP:-$PKG_ROOT/tmp}"
PKG_HOME="${SYNOPKG_PKGHOME:-$PKG_ROOT/home}"
PKG_ETC="$PKG_ROOT/etc"

BIN="$PKG_DEST/bin/backhome"
# The service listens on loopback only; DSM's nginx reaches it through nginx/backhome.conf.
PORT="@PORT@"
LISTEN="127.0.0.1:$PORT"
PID_FILE="$PKG_VAR/backhome.pid"
LOG_FILE="$PKG_VAR/backhome.log"
LOG_MAX_BYTES=5242880
# The install wizard's answers: DSM passes them to preinst/postinst only, so they are kept here.
SETTINGS="$PKG_VAR/package.conf"
# Task repositories default to <data dir>/repositories/<task>; this link puts them in the shared folder.
REPOS_LINK="$PKG_VAR/repositories"

log() {
    echo "$(date '+%Y-%m-%d %H:%M:%S') ${0##*/}: $*" >&2
}

# Shows a line in Package Center's result dialog (and logs it).
message() {
    log "$*"
    if [ -n "${SYNOPKG_TEMP_LOGFILE:-}" ]; then
        echo "$*" >>"$SYNOPKG_TEMP_LOGFILE"
    fi
}

# valid_share_name NAME: the rules DSM applies to shared folder names.
valid_share_name() {
    case "$1" in
        "" | .* | " "*) return 1 ;;
        *[\<\>:*?\"/\\\|=+\;,\[\]\`@#\$%^\&{}~\'!]*) return 1 ;;
    esac
    [ "${#1}" -le 32 ]
}

# The shared folder name chosen at install time (empty when unknown).
backup_share_name() {
    if [ -n "${wizard_backup_share:-}" ]; then
        echo "$wizard_backup_share"
    else
        setting backup_share
    fi
}

# setting KEY: a value saved in $SETTINGS.
setting() {
    [ -f "$SETTINGS" ] && sed -n "s/^$1=\"\(.*\)\"\$/\1/p" "$SETTINGS"
}

# The shared folder's real path. DSM links every shared folder the package acquired (conf/resource
# data-share) under shares/ while the package is installed; the path is saved at each start because the
# link is already gone when postuninst runs.
backup_share_path() {
    name=$(backup_share_name)
    [ -n "$name" ] || return 0
    if [ -d "$PKG_ROOT/shares/$name" ]; then
        (cd "$PKG_ROOT/shares/$name" && pwd -P)
    else
        saved=""
        [ "$(setting backup_share)" = "$name" ] && saved=$(setting backup_share_path)
        echo "${saved:-$PKG_ROOT/shares/$name}"
    fi
}

# save_settings NAME PATH
save_settings() (
    umask 077
    printf 'backup_share="%s"\nbackup_share_path="%s"\n' "$1" "$2" >"$SETTINGS.tmp" &&
        mv "$SETTINGS.tmp" "$SETTINGS"
)

# Points <var>/repositories at <share>/repositories. A real directory there (repositories made before the
# share was configured) is left alone.
link_repositories() {
    share=$(backup_share_path)
    [ -n "$share" ] || return 0
    if [ -L "$REPOS_LINK" ] || [ ! -e "$REPOS_LINK" ]; then
        [ "$(readlink "$REPOS_LINK" 2>/dev/null)" = "$share/repositories" ] && return 0
        ln -sfn "$share/repositories" "$REPOS_LINK"
    else
        message "Backhome keeps the repositories in $REPOS_LINK (not in the shared folder), because that folder already existed."
    fi
}

# Warns (but does not fail) when the backups would not be on Btrfs.
check_btrfs() {
    share=$(backup_share_path)
    [ -n "$share" ] && [ -d "$share" ] || return 0
    fs=$(stat -f -c %T "$share/" 2>/dev/null || echo unknown)
    if [ "$fs" != "btrfs" ]; then
        message "Warning: the shared folder '$(backup_share_name)' is on a $fs volume, not Btrfs. Backups work, but without Btrfs checksums and snapshots. Move the shared folder to a Btrfs volume for better protection."
    fi
}

service_pid() {
    [ -f "$PID_FILE" ] || return 1
    pid=$(cat "$PID_FILE" 2>/dev/null)
    case "$pid" in "" | *[!0-9]*) return 1 ;; esac
    kill -0 "$pid" 2>/dev/null || return 1
    # A recycled PID of another program does not count.
    grep -q backhome "/proc/$pid/cmdline" 2>/dev/null || return 1
    echo "$pid"
}

# delete_repositories DIR: deletes the repositories folder. Each repository may be a btrfs subvolume with
# read-only snapshots beside it (<repository>.snapshots/run-N); a snapshot is deleted as a subvolume, or,
# where the kernel refuses that to an unprivileged owner, made writable and removed like a folder.
delete_repositories() {
    [ -d "$1" ] || return 0
    if command -v btrfs >/dev/null 2>&1; then
        for snapshot in "$1"/*.snapshots/*; do
            [ -d "$snapshot" ] || continue
            btrfs subvolume delete "$snapshot" >/dev/null 2>&1 && continue
            btrfs property set -f -ts "$snapshot" ro false >/dev/null 2>&1
        done
    fi
    rm -rf "$1"
}
