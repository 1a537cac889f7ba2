// What each kind of browse entry is for the explorer.

const CONTAINERS = new Set(['dir', 'root', 'mail_folder', 'calendar', 'contact_folder', 'drive', 'drive_folder', 'channel', 'user', 'group', 'site', 'team']);

/** Entries that hold other entries (opened by the explorer, not shown as items). */
export function isContainer(kind: string): boolean {
  return CONTAINERS.has(kind);
}

/** The icon (see components/Icon.svelte) of each kind, next to the name. */
export function icon(kind: string): string {
  switch (kind) {
    case 'message': return 'mail';
    case 'channel_message': case 'channel': return 'chat';
    case 'event': case 'calendar': return 'calendar';
    case 'contact': case 'contact_folder': return 'contact';
    case 'file': case 'attachment': return 'file';
    default: return 'folder';
  }
}

/** The workload of a backup path (`mail`, `drive`, `calendar`, `contacts`, …), or null. */
export function workload(path: string): string | null {
  const parts = path.split('/').filter(Boolean);
  return parts.length >= 3 ? parts[2] : null;
}

/** The name shown for an entry: workload folders get their product names. */
export function displayName(e: { name: string; kind: string }, names: Record<string, string>): string {
  return (e.kind === 'dir' || e.kind === 'root') && names[e.name] ? names[e.name] : e.name;
}
