import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ApiError, type Progress } from '../lib/api';
import { followProgress, objectFraction, overallFraction, progressRows } from '../lib/live';

const progress = (run: number, extra: Partial<Progress> = {}): Progress => ({ run, items_added: run, bytes_downloaded: 0, objects: {}, ...extra });
const gone = () => new ApiError(404, 'not_found', 'no backup is running');

/** A stand-in for the browser's EventSource that the test drives. */
class FakeSource {
  static opened: FakeSource[] = [];
  listeners: Record<string, ((ev: MessageEvent<string>) => void)[]> = {};
  onerror: (() => void) | null = null;
  closed = false;
  constructor(public url: string) {
    FakeSource.opened.push(this);
  }
  addEventListener(name: string, fn: (ev: MessageEvent<string>) => void) {
    (this.listeners[name] ??= []).push(fn);
  }
  emit(name: string, data: unknown) {
    for (const fn of this.listeners[name] ?? []) fn({ data: JSON.stringify(data) } as MessageEvent<string>);
  }
  close() {
    this.closed = true;
  }
}

describe('followProgress', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    FakeSource.opened = [];
  });
  afterEach(() => vi.useRealTimers());

  it('streams while a run goes, then polls for the next one', async () => {
    const answers: (Progress | Error)[] = [progress(1), gone(), gone()];
    const poll = vi.fn(async () => {
      const a = answers.shift() ?? gone();
      if (a instanceof Error) throw a;
      return a;
    });
    const seen: number[] = [];
    let idle = 0;
    const f = followProgress('t 1', { progress: (p) => seen.push(p.items_added), idle: () => (idle += 1) }, { poll, EventSource: FakeSource as unknown as typeof EventSource, interval: 1000 });
    await vi.advanceTimersByTimeAsync(0);
    expect(seen).toEqual([1]);
    expect(FakeSource.opened).toHaveLength(1);
    expect(FakeSource.opened[0].url).toBe('api/v1/tasks/t%201/progress/stream');
    // While streaming, nothing is polled.
    await vi.advanceTimersByTimeAsync(5000);
    expect(poll).toHaveBeenCalledTimes(1);
    FakeSource.opened[0].emit('progress', progress(5));
    FakeSource.opened[0].emit('done', { id: 1 });
    expect(seen).toEqual([1, 5]);
    expect(idle).toBe(1);
    expect(FakeSource.opened[0].closed).toBe(true);
    await vi.advanceTimersByTimeAsync(1000);
    expect(poll).toHaveBeenCalledTimes(2);
    expect(idle).toBe(2);
    f.stop();
    await vi.advanceTimersByTimeAsync(5000);
    expect(poll).toHaveBeenCalledTimes(2);
  });

  it('falls back to polling when the stream fails before its first event', async () => {
    const poll = vi.fn(async () => progress(poll.mock.calls.length));
    const seen: number[] = [];
    const f = followProgress('t', { progress: (p) => seen.push(p.items_added), idle: () => {} }, { poll, EventSource: FakeSource as unknown as typeof EventSource, interval: 1000 });
    await vi.advanceTimersByTimeAsync(0);
    FakeSource.opened[0].onerror?.();
    expect(FakeSource.opened[0].closed).toBe(true);
    await vi.advanceTimersByTimeAsync(3000);
    // Polled every second from then on, and the stream not opened again for this run.
    expect(poll.mock.calls.length).toBeGreaterThanOrEqual(4);
    expect(FakeSource.opened).toHaveLength(1);
    expect(seen[seen.length - 1]).toBe(poll.mock.calls.length);
    f.stop();
  });

  it('polls only when there is no EventSource', async () => {
    const poll = vi.fn(async () => progress(1));
    const f = followProgress('t', { progress: () => {}, idle: () => {} }, { poll, interval: 500 });
    await vi.advanceTimersByTimeAsync(1600);
    expect(poll.mock.calls.length).toBeGreaterThanOrEqual(3);
    f.stop();
  });
});

describe('fractions', () => {
  it('are unknown until counted, then the share of containers and objects done', () => {
    expect(objectFraction({ items: 0, bytes: 0, activity: '', done: false })).toBeNull();
    expect(objectFraction({ items: 0, bytes: 0, activity: '', done: false, containers_total: 4, containers_done: 1 })).toBe(0.25);
    expect(objectFraction({ items: 0, bytes: 0, activity: '', done: true, containers_total: 0 })).toBe(1);
    const p = progress(1, {
      objects_total: 4,
      objects: {
        a: { items: 1, bytes: 0, activity: '', done: true, containers_total: 3, containers_done: 3 },
        b: { items: 1, bytes: 0, activity: 'mail', done: false, containers_total: 4, containers_done: 2 },
      },
    });
    expect(overallFraction(p)).toBe(0.375);
    expect(overallFraction(progress(1))).toBeNull();
  });
});

describe('progressRows', () => {
  it('adds a site library\'s items to its site', () => {
    const site = 'https://t.sharepoint.com/sites/hr';
    const rows = progressRows(progress(1, {
      objects: {
        [site]: { items: 0, bytes: 0, activity: '', done: false, containers_total: 2, containers_done: 1 },
        [`${site}/Documents`]: { items: 3, bytes: 30, activity: 'files', done: false },
        'a@b': { items: 1, bytes: 5, activity: 'mail: /Inbox', done: false, containers_total: 4, containers_done: 1 },
      },
    }));
    expect(rows.map(([n]) => n)).toEqual(['a@b', site]);
    expect(rows[1][1]).toEqual({ items: 3, bytes: 30, activity: 'files: Documents', done: false, containers_total: 2, containers_done: 1 });
  });
});
