import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import ItemView from '../components/ItemView.svelte';
import PointPicker from '../components/PointPicker.svelte';
import Picker from '../admin/Picker.svelte';
import Bar from '../components/Bar.svelte';
import SignIn from '../components/SignIn.svelte';
import Jobs from '../components/Jobs.svelte';
import Settings from '../admin/Settings.svelte';
import { setCsrf } from '../lib/api';

function answer(body: unknown, status = 200) {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe('ItemView', () => {
  it('shows a message in a sandboxed frame and its fields as text only', async () => {
    const fetch = vi.fn(async () => answer({
      entry: { name: 'x', path: '/users/a@b/mail/Inbox/x', kind: 'message', graph_id: 'g', size: 10, modified: null },
      metadata: {}, versions: [], subject: '<img src=x onerror=alert(1)>Hello', from: '<b>Eve</b>', to: ['a@b'], date: '2024-01-01T00:00:00Z', attachments: [],
    }));
    vi.stubGlobal('fetch', fetch);
    const { container } = render(ItemView, { task: 't', path: '/users/a@b/mail/Inbox/x', at: '3', onclose: () => {} });
    await screen.findByText('<img src=x onerror=alert(1)>Hello');
    expect(container.querySelector('img')).toBeNull();
    expect(container.querySelector('b')?.textContent).not.toBe('Eve');
    const frame = container.querySelector('iframe');
    expect(frame).not.toBeNull();
    expect(frame!.getAttribute('sandbox')).toBe('');
    expect(frame!.getAttribute('src')).toBe('api/v1/tasks/t/item/render?path=%2Fusers%2Fa%40b%2Fmail%2FInbox%2Fx&at=3');
    expect(fetch).toHaveBeenCalledWith('api/v1/tasks/t/item?path=%2Fusers%2Fa%40b%2Fmail%2FInbox%2Fx&at=3', expect.anything());
  });

  it('shows a file without a frame', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => answer({
      entry: { name: 'report.docx', path: '/users/a@b/drive/report.docx', kind: 'file', graph_id: 'g', size: 2048, modified: null },
      metadata: { webUrl: 'https://x' }, versions: [],
    })));
    const { container } = render(ItemView, { task: 't', path: '/users/a@b/drive/report.docx', at: undefined, onclose: () => {} });
    await screen.findByText('2.0 KB');
    expect(container.querySelector('iframe')).toBeNull();
  });
});

describe('PointPicker', () => {
  it('marks days with backups and picks a run', async () => {
    const picked: (string | undefined)[] = [];
    render(PointPicker, {
      points: [{ run: 2, at: '2024-03-12T10:00:00Z', status: 'complete' }, { run: 1, at: '2024-03-05T10:00:00Z', status: 'partial' }],
      at: undefined, onpick: (r: string | undefined) => picked.push(r),
    });
    expect(screen.getByText('March 2024')).toBeTruthy();
    const d5 = screen.getByRole('gridcell', { name: '2024-03-05: 1' });
    const d6 = screen.getByRole('gridcell', { name: '2024-03-06' });
    expect((d6 as HTMLButtonElement).disabled).toBe(true);
    await fireEvent.click(d5);
    expect(picked).toEqual(['1']);
    await fireEvent.click(screen.getByText('Latest'));
    expect(picked).toEqual(['1', undefined]);
  });
});

describe('Picker', () => {
  it('searches the directory and moves entries between include and exclude', async () => {
    const fetch = vi.fn(async (_url: string, init: RequestInit) => {
      const body = JSON.parse(String(init.body));
      expect(body.kind).toBe('users');
      expect(body.q).toBe('ali');
      return answer([{ id: '1', name: 'Alice', address: 'alice@contoso.com' }]);
    });
    vi.stubGlobal('fetch', fetch);
    setCsrf('tok');
    const conn = { cloud: 'global', tenant_id: 't', app_id: 'a', certificate: { pfx_base64: 'x', password: 'p' } };
    render(Picker, { kind: 'users', label: 'Users', connection: conn, include: [], exclude: [] });
    await fireEvent.input(screen.getByLabelText('Search users'), { target: { value: 'ali' } });
    const inc = await screen.findByRole('button', { name: 'Include Alice' }, { timeout: 2000 });
    expect((fetch.mock.calls[0][1].headers as Record<string, string>)['X-SYNO-TOKEN']).toBe('tok');
    await fireEvent.click(inc);
    expect(screen.getByText('alice@contoso.com', { selector: '.chip' })).toBeTruthy();
    await fireEvent.click(screen.getByRole('button', { name: 'Exclude Alice' }));
    await waitFor(() => expect(screen.getByText('Included:').parentElement!.textContent).toContain('All'));
  });
});

describe('Bar', () => {
  it('reports its value', () => {
    render(Bar, { done: 3, total: 4, label: 'Overall' });
    expect(screen.getByRole('progressbar', { name: 'Overall' }).getAttribute('aria-valuenow')).toBe('75');
  });
});

describe('SignIn', () => {
  it('says when the password is wrong', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => answer({ error: { code: 'bad_credentials', message: 'no' } }, 401)));
    render(SignIn, { onsignedin: () => {} });
    await fireEvent.input(screen.getByLabelText('User name'), { target: { value: 'a' } });
    await fireEvent.input(screen.getByLabelText('Password'), { target: { value: 'b' } });
    await fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    expect((await screen.findByRole('alert')).textContent).toBe('Wrong user name or password.');
  });
});

describe('Jobs', () => {
  it('follows a running job and words the results', async () => {
    const running = { id: 'j1', kind: 'restore', task: 't', owner: 'admin', state: 'running', progress: { done: 1, total: 4, bytes: 10 }, started_at: '2024-01-01T00:00:00Z', ended_at: null, result: null, download: null };
    const done = { ...running, state: 'done', ended_at: '2024-01-01T00:01:00Z', result: { restored: 3, skipped: 1, failed: [{ path: '/users/a/mail/x', reason: 'gone' }] } };
    const exp = { ...running, id: 'j2', kind: 'export', state: 'done', result: { items: 10, folders: 2, bytes: 2048 }, download: 'api/v1/jobs/j2/download' };
    const answers = [[running, exp], [done, exp]];
    const fetch = vi.fn(async () => answer(answers[Math.min(fetch.mock.calls.length - 1, 1)]));
    vi.stubGlobal('fetch', fetch);
    render(Jobs, {});
    expect((await screen.findByRole('progressbar', { name: 'Restore j1' })).getAttribute('aria-valuenow')).toBe('25');
    expect(await screen.findByText('3 restored, 1 skipped, 1 failed · /users/a/mail/x: gone', {}, { timeout: 3000 })).toBeTruthy();
    expect(screen.getByText('10 items in 2 folder(s), 2.0 KB')).toBeTruthy();
    expect(screen.getByRole('link', { name: 'Download' }).getAttribute('href')).toBe('api/v1/jobs/j2/download');
  });
});

describe('ItemView of an event', () => {
  it('shows nested fields as text', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => answer({
      entry: { name: 'Review', path: '/users/a@b/calendar/Calendar/Review', kind: 'event', graph_id: 'g', size: 300, modified: null },
      metadata: { id: 'x', subject: '<b>Review</b>', start: { dateTime: '2024-05-01T10:00:00', timeZone: 'UTC' }, attendees: [{ emailAddress: { address: 'c@d' }, type: 'required' }], categories: ['Blue'] },
      versions: [],
    })));
    const { container } = render(ItemView, { task: 't', path: '/users/a@b/calendar/Calendar/Review', at: undefined, onclose: () => {} });
    await screen.findByText('start.dateTime');
    expect(screen.getByText('2024-05-01T10:00:00')).toBeTruthy();
    expect(screen.getByText('<b>Review</b>')).toBeTruthy();
    expect(container.querySelector('dd b')).toBeNull();
    expect(screen.getByText('Blue')).toBeTruthy();
    expect(screen.queryByText('id')).toBeNull();
  });
});

describe('Settings: notifications', () => {
  it('saves the events and recipients, and shows the service\'s refusal', async () => {
    const defaults = { run_failed: true, run_partial: true, run_succeeded: false, retention_failed: true, certificate_expiring: true, certificate_days: 30, recipients: ['@administrators'] };
    const puts: unknown[] = [];
    vi.stubGlobal('fetch', vi.fn(async (url: string, init?: RequestInit) => {
      if (url === 'api/v1/settings/notifications' && init?.method === 'PUT') {
        const body = JSON.parse(String(init.body));
        puts.push(body);
        if (body.recipients.includes('bad;name')) return answer({ error: { code: 'bad_request', message: "recipients: 'bad;name' is not a DSM user name" } }, 400);
        return answer({ settings: body, desktop: false });
      }
      if (url === 'api/v1/settings/notifications') return answer({ settings: defaults, desktop: false });
      if (url === 'api/v1/mapping' || url === 'api/v1/tasks' || url === 'api/v1/me/accounts') return answer([]);
      return answer({ error: { code: 'not_found', message: 'no' } }, 404);
    }));
    render(Settings);
    const success = await screen.findByLabelText('A backup finishes successfully');
    expect((success as HTMLInputElement).checked).toBe(false);
    screen.getByText(/written to the log only/);
    const rcpt = screen.getByLabelText('DSM users and groups') as HTMLTextAreaElement;
    expect(rcpt.value).toBe('@administrators');
    await fireEvent.input(rcpt, { target: { value: '@administrators\nbad;name' } });
    await fireEvent.click(screen.getByRole('button', { name: 'Save' }));
    await screen.findByText(/'bad;name' is not a DSM user name/);
    await fireEvent.click(success);
    await fireEvent.input(rcpt, { target: { value: '@administrators, admin\n' } });
    await fireEvent.click(screen.getByRole('button', { name: 'Save' }));
    await screen.findByText('Saved');
    expect(puts[1]).toEqual({ ...defaults, run_succeeded: true, recipients: ['@administrators', 'admin'] });
  });
});
