import { describe, expect, it } from 'vitest';
import { parseTimes, scheduleProblem, validRepoPath, validTaskName, fileBase64 } from '../lib/validate';
import { bytes, leaf, parent, percent, unescapeName } from '../lib/format';
import { parseHash, href } from '../lib/router';
import { qs } from '../lib/api';
import { warnings } from '../lib/warnings';
import { displayName, isContainer, workload } from '../lib/kinds';
import type { Task } from '../lib/api';

describe('validate', () => {
  it('accepts and normalises times of day', () => {
    expect(parseTimes('2:00, 14:30 02:00')).toEqual(['02:00', '14:30']);
    expect(parseTimes('24:00')).toBeNull();
    expect(parseTimes('7')).toBeNull();
    expect(parseTimes('')).toBeNull();
  });
  it('checks task names and repository paths', () => {
    expect(validTaskName('contoso-2024.main')).toBe(true);
    expect(validTaskName('../x')).toBe(false);
    expect(validTaskName('a b')).toBe(false);
    expect(validRepoPath('/volume1/backhome/x')).toBe(true);
    expect(validRepoPath('volume1/x')).toBe(false);
    expect(validRepoPath('/volume1/../etc')).toBe(false);
  });
  it('finds incomplete fixed schedules', () => {
    expect(scheduleProblem({ kind: 'manual' })).toBeNull();
    expect(scheduleProblem({ kind: 'fixed', days: [], times: ['02:00'] })).toBe('noDays');
    expect(scheduleProblem({ kind: 'fixed', days: [1], times: [] })).toBe('badTimes');
    expect(scheduleProblem({ kind: 'fixed', days: [1], times: ['02:00'] })).toBeNull();
  });
  it('reads a file as base64', async () => {
    expect(await fileBase64(new Blob([new Uint8Array([0, 1, 2, 250, 255])]))).toBe('AAEC+v8=');
  });
});

describe('format', () => {
  it('prints sizes', () => {
    expect(bytes(0)).toBe('0 B');
    expect(bytes(1536)).toBe('1.5 KB');
    expect(bytes(50 * 1024 * 1024)).toBe('50 MB');
    expect(bytes(undefined)).toBe('—');
  });
  it('splits backup paths with escaped names', () => {
    expect(leaf('/users/a@b.c/drive/x%2Fy%25z')).toBe('x/y%z');
    expect(unescapeName('a%252F')).toBe('a%2F');
    expect(parent('/users/a/mail/Inbox')).toBe('/users/a/mail');
    expect(percent(5, 0)).toBe(0);
    expect(percent(3, 4)).toBe(75);
  });
});

describe('router and query strings', () => {
  it('round-trips a hash with paths and query values', () => {
    const h = href(['admin', 'task', 'a b'], { tab: 'logs', path: '/users/x@y/mail/In box', empty: '' });
    const r = parseHash(h);
    expect(r.parts).toEqual(['admin', 'task', 'a b']);
    expect(r.query).toEqual({ tab: 'logs', path: '/users/x@y/mail/In box' });
  });
  it('leaves out empty parameters', () => {
    expect(qs({ a: 1, b: '', c: undefined, d: null, e: 'x y' })).toBe('?a=1&e=x+y');
    expect(qs({})).toBe('');
  });
});

describe('kinds', () => {
  it('tells containers from items', () => {
    expect(isContainer('mail_folder')).toBe(true);
    expect(isContainer('message')).toBe(false);
    expect(workload('/users/a@b/mail/Inbox')).toBe('mail');
    expect(workload('/users/a@b')).toBeNull();
    expect(displayName({ name: 'onedrive', kind: 'dir' }, { onedrive: 'OneDrive' })).toBe('OneDrive');
    expect(displayName({ name: 'onedrive', kind: 'drive_folder' }, { onedrive: 'OneDrive' })).toBe('onedrive');
  });
});

describe('warnings', () => {
  const base = { name: 't', state: 'idle', last_run: null, certificate: null } as unknown as Task;
  const run = (status: string, item_errors = 0) => ({ id: 1, status, item_errors }) as unknown as Task['last_run'];
  it('reports failures before warnings', () => {
    const w = warnings([
      { ...base, name: 'a', last_run: run('partial', 3) },
      { ...base, name: 'b', last_run: run('failed') },
      { ...base, name: 'c', last_run: run('complete') },
      { ...base, name: 'd' },
    ]);
    expect(w.map((x) => [x.task, x.level])).toEqual([['b', 'error'], ['a', 'warn'], ['d', 'warn']]);
    expect(w[1].text).toContain('3');
  });
  it('warns about certificates about to expire', () => {
    const cert = (days: number) => ({ subject: '', thumbprint: '', not_after: '', expires_in_days: days, warning: null });
    expect(warnings([{ ...base, last_run: run('complete'), certificate: cert(10) }])[0].text).toContain('10 day');
    expect(warnings([{ ...base, last_run: run('complete'), certificate: cert(-1) }])[0].level).toBe('error');
    expect(warnings([{ ...base, last_run: run('complete'), certificate: cert(200) }])).toEqual([]);
  });
});
