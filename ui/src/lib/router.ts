// Hash routing: `#/admin/...` and `#/portal...`, with query parameters after `?`.
import { readable } from 'svelte/store';

export interface Route { parts: string[]; query: Record<string, string> }

/** Parses a location hash such as `#/admin/task/t?tab=logs`. */
export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#/, '');
  const [path, query = ''] = raw.split('?', 2);
  const parts = path.split('/').filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  const q: Record<string, string> = {};
  new URLSearchParams(query).forEach((v, k) => {
    q[k] = v;
  });
  return { parts, query: q };
}

/** Builds a hash from path parts and query parameters (empty values left out). */
export function href(parts: string[], query: Record<string, string | number | undefined | null> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return `#/${parts.map(encodeURIComponent).join('/')}${s ? `?${s}` : ''}`;
}

/** Goes to a hash. */
export function go(parts: string[], query: Record<string, string | number | undefined | null> = {}): void {
  location.hash = href(parts, query);
}

/** The current route, updated on every hash change. */
export const route = readable<Route>(parseHash(typeof location === 'undefined' ? '' : location.hash), (set) => {
  const on = () => set(parseHash(location.hash));
  window.addEventListener('hashchange', on);
  return () => window.removeEventListener('hashchange', on);
});
