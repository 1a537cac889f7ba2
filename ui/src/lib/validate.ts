// Checks of what an administrator types, before anything is sent.
import type { Schedule } from './api';

/** A task name: what the service accepts as a folder and URL segment. */
export function validTaskName(s: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(s);
}

/** An absolute folder path without `..`. */
export function validRepoPath(s: string): boolean {
  return s.startsWith('/') && !s.split('/').includes('..') && s.length > 1;
}

/** "02:00, 14:30" → ["02:00", "14:30"]; null when any part is not a time of day. */
export function parseTimes(s: string): string[] | null {
  const parts = s.split(/[,\s]+/).filter(Boolean);
  if (parts.length === 0) return null;
  const out: string[] = [];
  for (const p of parts) {
    const mt = /^(\d{1,2}):(\d{2})$/.exec(p);
    if (!mt || Number(mt[1]) > 23 || Number(mt[2]) > 59) return null;
    out.push(`${mt[1].padStart(2, '0')}:${mt[2]}`);
  }
  return [...new Set(out)].sort();
}

/** The problem with a schedule, or null when it is complete. */
export function scheduleProblem(s: Schedule): 'noDays' | 'badTimes' | null {
  if (s.kind !== 'fixed') return null;
  if (s.days.length === 0) return 'noDays';
  if (s.times.length === 0 || parseTimes(s.times.join(',')) === null) return 'badTimes';
  return null;
}

/** A GUID such as a tenant or application ID (or a verified domain for the tenant). */
export function validTenant(s: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s.trim()) || /^[a-z0-9.-]+\.[a-z]{2,}$/i.test(s.trim());
}

/** Reads a file as base64 (the certificate upload). */
export async function fileBase64(file: Blob): Promise<string> {
  const buf = new Uint8Array(await file.arrayBuffer());
  let bin = '';
  for (let i = 0; i < buf.length; i += 0x8000) bin += String.fromCharCode(...buf.subarray(i, i + 0x8000));
  return btoa(bin);
}
