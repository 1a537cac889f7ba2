#!/bin/sh
# Install wizard, generated before installation: the static install_uifile next to this script with a
# line that lists the NAS's volumes and their file systems, and a warning when none of them is Btrfs.
# DSM reads the wizard from $SYNOPKG_TEMP_LOGFILE.
here=$(dirname "$0")
volumes=""
btrfs=0
for vol in "${BACKHOME_VOLUME_ROOT:-}"/volume[0-9]*; do
    [ -d "$vol" ] || continue
    fs=$(stat -f -c %T "$vol" 2>/dev/null || echo unknown)
    name=$(basename "$vol")
    if [ "$fs" = "btrfs" ]; then
        btrfs=$((btrfs + 1))
        volumes="$volumes $name (Btrfs),"
    else
        volumes="$volumes $name ($fs: not recommended),"
    fi
done
volumes=${volumes%,}
if [ "$btrfs" -gt 0 ]; then
    note="Volumes on this NAS:$volumes."
else
    note="<b>Warning:</b> no Btrfs volume was found on this NAS (${volumes:- none}). Backhome works on other file systems, but without Btrfs the backups get no block checksums and no snapshots."
fi
# The note is inserted as the first item of the first step.
sed "0,/\"items\": \[/s||\"items\": [ { \"desc\": \"$note\" },|" "$here/install_uifile" > "$SYNOPKG_TEMP_LOGFILE"
