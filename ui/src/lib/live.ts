// Live progress of a task's backup: the service's Server-Sent Events stream while a run goes,
// polling while none does (to notice the next one) and whenever the stream does not work.
import { api, ApiError, urls, type ObjectProgress, type Progress } from './api';

export interface Follower {
  /** Asks the service now (after "Back up now"). */
  refresh(): void;
  /** Stops polling and closes the stream. */
  stop(): void;
}

export interface FollowOptions {
  /** The progress as JSON (default: the API). */
  poll?: () => Promise<Progress>;
  /** The EventSource constructor (default: the browser's; none: polling only). */
  EventSource?: typeof EventSource;
  /** Milliseconds between polls. */
  interval?: number;
}

/**
 * Follows the progress of task `name`: `progress` with every update, `idle` whenever no backup
 * is running. A stream that fails before its first event is not tried again for that run.
 */
export function followProgress(
  name: string,
  on: { progress: (p: Progress) => void; idle: () => void },
  o: FollowOptions = {},
): Follower {
  const poll = o.poll ?? (() => api.progress(name));
  const Source = o.EventSource ?? (typeof EventSource === 'undefined' ? undefined : EventSource);
  const every = o.interval ?? 1000;
  let stopped = false;
  let es: EventSource | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let streamWorks = true;
  let live = false;

  const schedule = (ms: number) => {
    clearTimeout(timer);
    if (!stopped && !es) timer = setTimeout(tick, ms);
  };
  const close = () => {
    es?.close();
    es = null;
  };

  async function tick() {
    if (stopped || es) return;
    try {
      const p = await poll();
      if (stopped) return;
      live = true;
      on.progress(p);
      if (Source && streamWorks) {
        open(Source);
        return;
      }
    } catch (e) {
      if (stopped) return;
      if (e instanceof ApiError && e.status === 404) {
        if (live) {
          live = false;
          streamWorks = true;
        }
        on.idle();
      }
    }
    schedule(every);
  }

  function open(S: typeof EventSource) {
    const s = new S(urls.progressStream(name));
    es = s;
    let got = false;
    s.addEventListener('progress', (ev) => {
      try {
        const p = JSON.parse((ev as MessageEvent<string>).data) as Progress;
        got = true;
        if (!stopped) on.progress(p);
      } catch {
        // A malformed event is skipped; the next one follows within a second.
      }
    });
    s.addEventListener('done', () => {
      close();
      live = false;
      if (!stopped) on.idle();
      schedule(every);
    });
    s.onerror = () => {
      if (es !== s) return;
      close();
      if (!got) streamWorks = false;
      schedule(0);
    };
  }

  schedule(0);
  return {
    refresh: () => {
      if (!es) schedule(0);
    },
    stop: () => {
      stopped = true;
      clearTimeout(timer);
      close();
    },
  };
}

/** Whether an object's container count is known (a determinate bar) and its fraction done. */
export function objectFraction(o: ObjectProgress): number | null {
  if (o.done) return 1;
  const total = o.containers_total ?? 0;
  if (total <= 0) return null;
  return Math.min(1, (o.containers_done ?? 0) / total);
}

/**
 * The whole run's fraction done: finished objects count fully, running ones by their
 * containers; null until the number of objects is known.
 */
export function overallFraction(p: Progress): number | null {
  const total = p.objects_total ?? 0;
  if (total <= 0) return null;
  let done = 0;
  for (const o of Object.values(p.objects)) done += objectFraction(o) ?? 0;
  return Math.min(1, done / total);
}

/**
 * The rows of the progress table, by name. A site's libraries report their items under
 * `<site>/<library>`: they are added to the site's row, whose activity names the library.
 */
export function progressRows(p: Progress): [string, ObjectProgress][] {
  const rows = new Map<string, ObjectProgress>();
  const names = Object.keys(p.objects).sort((a, b) => a.localeCompare(b));
  for (const name of names) rows.set(name, { ...p.objects[name] });
  for (const name of names) {
    const part = p.objects[name];
    if (part.containers_total !== undefined && part.containers_total > 0) continue;
    const owner = names.find((o) => o !== name && name.startsWith(`${o}/`) && (p.objects[o].containers_total ?? 0) > 0);
    const row = owner === undefined ? undefined : rows.get(owner);
    if (!owner || !row) continue;
    row.items += part.items;
    row.bytes += part.bytes;
    if (!row.done && part.activity) row.activity = `${part.activity}: ${name.slice(owner.length + 1)}`;
    rows.delete(name);
  }
  return [...rows.entries()];
}
