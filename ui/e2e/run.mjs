// End-to-end tests: the built UI in Debian's Chromium (headless, driven by playwright-core)
// against the real service and simulated tenant started by `backhome demo`.
// Usage: node e2e/run.mjs [--bin path/to/backhome] [--only name,name]
// Screenshots of the main views go to docs/screenshots/ with UPDATE_SCREENSHOTS=1, else to a
// temporary folder (a test run leaves the checkout clean).
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const args = process.argv.slice(2);
const opt = (k, d) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : d; };
const bin = resolve(opt('--bin', process.env.BACKHOME_BIN ?? join(root, 'target/debug/backhome')));
const only = opt('--only', '')?.split(',').filter(Boolean) ?? [];
const shots = process.env.UPDATE_SCREENSHOTS === '1' ? join(root, 'docs/screenshots') : mkdtempSync(join(tmpdir(), 'backhome-shots-'));
const PASSWORD = 'backhome-demo';
const started = Date.now();

// ---------- the service ----------
const data = mkdtempSync(join(tmpdir(), 'backhome-e2e-'));
const svc = spawn(bin, ['demo', '--listen', '127.0.0.1:0', '--data-dir', data, '--ui-dir', join(root, 'ui/dist')], { stdio: ['ignore', 'pipe', 'pipe'] });
process.on('exit', () => svc.kill('SIGKILL'));
let stderr = '';
svc.stderr.on('data', (d) => { stderr += d; if (process.env.E2E_VERBOSE) process.stderr.write(d); });
const url = await new Promise((ok, fail) => {
  let out = '';
  const t = setTimeout(() => fail(new Error(`the demo printed no URL in 120 s\n${stderr}`)), 120_000);
  svc.stdout.on('data', (d) => {
    out += d;
    const line = out.split('\n').find((l) => /^http:\/\/127\.0\.0\.1:\d+\/$/.test(l.trim()));
    if (line) { clearTimeout(t); ok(line.trim()); }
  });
  svc.on('exit', (c) => { clearTimeout(t); fail(new Error(`the demo exited (${c})\n${stderr}`)); });
});
const control = await waitFor(() => /simulator control: (\S+)/.exec(stderr)?.[1], 10_000, 'the simulator control URL');
const ready = JSON.parse(readFileSync(join(data, 'simulator/ready.json'), 'utf8'));
const sim = control.replace(/\/$/, '');
console.log(`service ${url}, simulator ${sim}`);

// ---------- helpers ----------
function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }
async function waitFor(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}
function check(cond, msg) { if (!cond) throw new Error(msg); }
async function simGet(path) { const r = await fetch(`${sim}/${path}`); check(r.ok, `simulator ${path}: ${r.status}`); return r.json(); }
async function simPost(path, body) {
  const r = await fetch(`${sim}/${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const text = await r.text();
  check(r.ok, `simulator ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}
/** An API client outside the browser, signed in as `user` (cookie + CSRF token). */
async function apiAs(user) {
  const r = await fetch(`${url}api/v1/session`, { method: 'POST', headers: { 'Content-Type': 'application/json', Origin: url.replace(/\/$/, '') }, body: JSON.stringify({ user, password: PASSWORD }) });
  check(r.ok, `sign-in of ${user}: ${r.status}`);
  const cookie = r.headers.get('set-cookie').split(';')[0];
  const { csrf_token } = await r.json();
  return async (method, path, body) => {
    const res = await fetch(`${url}api/v1/${path}`, { method, headers: { Cookie: cookie, 'X-SYNO-TOKEN': csrf_token, 'Content-Type': 'application/json', Origin: url.replace(/\/$/, '') }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: text ? (() => { try { return JSON.parse(text); } catch { return text; } })() : null };
  };
}
const admin = await apiAs('admin');
const spec = (await (await fetch(`${url}api/v1/openapi.json`)).json());
const routes = new Set(Object.entries(spec.paths ?? {}).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p.replace(/^\/api\/v1/, '')}`)));
/** Fails the test, without faking anything, when a route it needs has not landed in the service. */
function needs(...rs) {
  const missing = rs.filter((r) => !routes.has(r));
  if (missing.length) { const e = new Error(`route(s) not in the service yet: ${missing.join(', ')}`); e.missing = true; throw e; }
}
async function waitIdle(task, ms = 180_000) {
  return waitFor(async () => { const r = await admin('GET', `tasks/${task}`); return r.status === 200 && r.body.state === 'idle' && r.body.last_run ? r.body : null; }, ms, `task ${task} to be idle`);
}
async function backup(task) {
  const r = await admin('POST', `tasks/${task}/runs`);
  check(r.status === 202, `starting a backup: ${r.status} ${JSON.stringify(r.body)}`);
  const t = await waitIdle(task);
  check(['complete', 'partial'].includes(t.last_run.status), `backup of ${task} ended ${t.last_run.status}`);
  return t.last_run;
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
async function signedIn(user, viewport = { width: 1024, height: 768 }) {
  const ctx = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await ctx.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  // The first session check answers 401 before signing in: expected, not an error of the page.
  page.on('console', (msg) => { if (msg.type() === 'error' && !/status of 401/.test(msg.text())) page.errors.push(msg.text()); });
  await page.goto(`${url}#/${user === 'admin' ? 'admin' : 'portal'}`);
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForSelector(user === 'admin' ? 'nav[aria-label="Sections"]' : 'text=Backhome Portal');
  return page;
}
async function shot(page, name) {
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, `${name}.png`) });
}

// The demo task (after its first backup), the portal user's mailbox and another user's.
let demo, first, users, other;
let setupDone = null;
function setup() {
  setupDone ??= (async () => {
    needs('GET /me/accounts', 'GET /tasks/{name}/points');
    // The demo's task, and its first backup done (through the task routes when they exist,
    // else through the restore points the browsing routes list).
    const name = (await waitFor(async () => (await admin('GET', 'me/accounts')).body?.[0]?.task, 120_000, 'the demo task'));
    demo = { name };
    if (routes.has('GET /tasks/{name}')) await waitIdle(name);
    else await waitFor(async () => (await admin('GET', `tasks/${name}/points`)).body?.length > 0, 180_000, 'the first backup');
    const portalApi = await apiAs('portal');
    first = (await portalApi('GET', 'session')).body.email;
    users = Object.keys((await simGet('snapshot?content=false')).mail ?? {});
    check(users.includes(first), `the portal user's address ${first} is not a mailbox of the tenant`);
    other = users.find((u) => u !== first);
  })();
  return setupDone;
}

// ---------- tests ----------
const tests = [];
const test = (name, fn) => tests.push({ name, fn });
const state = {};

test('wizard creates a task and backs it up', async () => {
  needs('GET /tasks/{name}', 'POST /tasks/test-connection', 'POST /tasks', 'POST /directory', 'POST /tasks/{name}/runs');
  const page = await signedIn('admin');
  await page.goto(`${url}#/admin/new`);
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByLabel('Cloud').selectOption('custom');
  await page.getByLabel('Sign-in endpoint').fill(ready.login_endpoint);
  await page.getByLabel('Graph endpoint').fill(ready.graph_endpoint);
  await page.getByLabel('Administrator e-mail').fill(`admin@${first.split('@')[1]}`);
  await page.getByLabel('Tenant ID').fill(ready.tenant_id);
  await page.getByLabel('Application (client) ID').fill(ready.app_id);
  await page.getByLabel('Certificate (.pfx)').setInputFiles(ready.cert_pfx);
  await page.getByLabel('Certificate password').fill('wrong-password');
  await page.getByRole('button', { name: 'Next' }).click();
  // A wrong password gets a clear diagnosis, and the wizard does not go on.
  await page.getByRole('button', { name: 'Test connection' }).click();
  await page.getByRole('alert').filter({ hasText: /password|certificate/i }).waitFor();
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByText('Test the connection before continuing.').waitFor();
  await page.getByRole('button', { name: 'Back' }).click();
  await page.getByLabel('Certificate password').fill(ready.cert_password);
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('button', { name: 'Test connection' }).click();
  await page.locator('.alert.ok').waitFor();
  await shot(page, 'wizard-test-connection');
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByLabel('Task name').fill('wizard');
  await page.getByRole('button', { name: 'Next' }).click();
  for (const w of ['Calendar', 'Contacts', 'OneDrive', 'SharePoint sites', 'Teams channels', 'Microsoft 365 groups']) await page.getByLabel(w, { exact: true }).uncheck();
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByLabel('Search users').fill(first.split('@')[0]);
  await page.getByRole('button', { name: /^Include / }).first().click();
  await page.locator('.chip', { hasText: first }).waitFor();
  await shot(page, 'wizard-accounts');
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('button', { name: 'Next' }).click(); // portal
  await page.getByLabel('New groups').uncheck();
  await page.getByLabel('New sites').uncheck();
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByLabel('Manual only').check();
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByText('Default: the task name under the Backhome shared folder').waitFor();
  await shot(page, 'wizard-summary');
  await page.getByRole('button', { name: 'Done' }).click();
  await page.getByRole('dialog', { name: 'Back up now?' }).waitFor();
  await page.getByRole('button', { name: 'Back up now' }).click();
  await page.waitForURL(/#\/admin\/task\/wizard/);
  const t = (await admin('GET', 'tasks/wizard')).body;
  check(t.include_users?.includes(first) && t.services.join() === 'mail' && t.schedule.kind === 'manual', `the task has other settings: ${JSON.stringify(t)}`);
  const done = await waitIdle('wizard');
  check(['complete', 'partial'].includes(done.last_run.status), `first backup ${done.last_run.status}`);
  await page.getByRole('tab', { name: 'History' }).click();
  await page.locator('tbody tr').first().waitFor();
  await shot(page, 'task-history');
  await page.context().close();
});

test('delete a task keeping its data, then relink it with its history', async () => {
  needs('DELETE /tasks/{name}', 'GET /repositories', 'POST /tasks/relink', 'GET /tasks/{name}/runs');
  const runsBefore = (await admin('GET', 'tasks/wizard/runs')).body;
  check(Array.isArray(runsBefore) && runsBefore.length > 0, 'the wizard task has no runs to keep');
  const repo = (await admin('GET', 'tasks/wizard')).body.repo;
  const page = await signedIn('admin');
  await page.goto(`${url}#/admin/task/wizard`);
  await page.getByRole('button', { name: 'Delete' }).click();
  check(!(await page.getByLabel('Also delete the repository and every backup in it').isChecked()), 'deleting the data is the default');
  await page.getByRole('dialog').getByRole('button', { name: 'Delete task' }).click();
  await page.waitForURL(/#\/admin$/);
  check((await admin('GET', 'tasks/wizard')).status === 404, 'the task is still there');
  check(existsSync(repo), 'the repository was deleted');
  await page.goto(`${url}#/admin/new`);
  await page.getByLabel('Relink an existing task').check();
  await page.getByLabel('Shared folder to search').fill(dirname(repo));
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.getByLabel(new RegExp(repo.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).check();
  await shot(page, 'wizard-relink');
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByLabel('Cloud').selectOption('custom');
  await page.getByLabel('Sign-in endpoint').fill(ready.login_endpoint);
  await page.getByLabel('Graph endpoint').fill(ready.graph_endpoint);
  await page.getByLabel('Tenant ID').fill(ready.tenant_id);
  await page.getByLabel('Application (client) ID').fill(ready.app_id);
  await page.getByLabel('Certificate (.pfx)').setInputFiles(ready.cert_pfx);
  await page.getByLabel('Certificate password').fill(ready.cert_password);
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('button', { name: 'Test connection' }).click();
  await page.locator('.test-result .alert.ok').waitFor({ timeout: 60_000 });
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByLabel('Task name').fill('relinked');
  for (let i = 0; i < 5; i++) await page.getByRole('button', { name: 'Next' }).click();
  await page.getByLabel('Manual only').check();
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('button', { name: 'Relink' }).click();
  await page.getByRole('dialog', { name: 'Back up now?' }).waitFor();
  await page.getByRole('button', { name: 'Later' }).click();
  const runsAfter = (await admin('GET', 'tasks/relinked/runs')).body;
  check(runsAfter.length === runsBefore.length, `the relinked task lists ${runsAfter.length} runs, the deleted one had ${runsBefore.length}`);
  await page.context().close();
});

test('wizard registers the app for me', async () => {
  needs('POST /registrations', 'GET /registrations/{id}', 'POST /tasks/test-connection', 'POST /tasks');
  const put = await fetch(`${sim}/registration`, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ device_interval: 1 }) });
  check(put.ok, `simulator registration settings: ${put.status}`);
  const page = await signedIn('admin');
  await page.goto(`${url}#/admin/new`);
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByLabel('Cloud').selectOption('custom');
  await page.getByLabel('Sign-in endpoint').fill(ready.login_endpoint);
  await page.getByLabel('Graph endpoint').fill(ready.graph_endpoint);
  await page.getByRole('button', { name: 'Register the app for me' }).click();
  const code = page.locator('.register .code b');
  await code.waitFor({ timeout: 30_000 });
  await shot(page, 'wizard-register');
  await simPost('device/approve', { user_code: (await code.textContent()).trim(), roles: ['Global Administrator'] });
  await page.getByText(/registered with \d+ permission/).waitFor({ timeout: 90_000 });
  check(await page.getByLabel('Tenant ID').inputValue() === ready.tenant_id, 'the tenant ID was not filled in');
  check(/^[0-9a-f-]{36}$/.test(await page.getByLabel('Application (client) ID').inputValue()), 'the application ID was not filled in');
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('button', { name: 'Test connection' }).click();
  await page.locator('.test-result .alert').waitFor({ timeout: 60_000 });
  const said = await page.locator('.test-result').textContent();
  // docs/api.md: the task routes answer 400 to `{registration_id}` until they accept
  // registrations by reference. Reported as pending (not passed) until then.
  if (/registrations are not accepted here yet/.test(said)) { const e = new Error(`the task routes do not accept {registration_id} yet: ${said.trim()}`); e.pending = true; throw e; }
  check(await page.locator('.test-result .alert.ok').count() === 1, `the test failed: ${await page.locator('.test-result').textContent()}`);
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByLabel('Task name').fill('registered');
  await page.getByRole('button', { name: 'Next' }).click();
  for (const w of ['Mail', 'Calendar', 'OneDrive', 'SharePoint sites', 'Teams channels', 'Microsoft 365 groups']) await page.getByLabel(w, { exact: true }).uncheck();
  for (let i = 0; i < 4; i++) await page.getByRole('button', { name: 'Next' }).click();
  await page.getByLabel('Manual only').check();
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('button', { name: 'Done' }).click();
  await page.getByRole('dialog', { name: 'Back up now?' }).waitFor();
  await page.getByRole('button', { name: 'Later' }).click();
  const t = (await admin('GET', 'tasks/registered')).body;
  check(t.services?.join() === 'contacts' && t.tenant_id === ready.tenant_id, `the task has other settings: ${JSON.stringify(t)}`);
  await page.context().close();
});

test('backup progress moves', async () => {
  needs('POST /tasks/{name}/runs', 'GET /tasks/{name}/progress', 'GET /tasks/{name}');
  await simPost('latency', { ms: 40 });
  // New mail for every user so the run has work to show.
  await simPost('mutate', users.slice(0, 6).flatMap((u) => Array.from({ length: 15 }, () => ({ op: 'add_message', user: u }))));
  const page = await signedIn('admin');
  // Live progress comes over the event stream (polling is only the fallback).
  const streams = [];
  page.on('response', (r) => { if (r.url().includes('/progress/stream')) streams.push(r.status()); });
  await page.goto(`${url}#/admin/task/${demo.name}`);
  await page.getByRole('button', { name: 'Back up now' }).click();
  const items = page.getByTestId('overall-items');
  await items.waitFor({ timeout: 20_000 });
  const seen = new Set();
  const end = Date.now() + 60_000;
  while (Date.now() < end && (seen.size < 3 || !state.determinate)) {
    if (await items.count()) seen.add(await items.textContent().catch(() => ''));
    if (!state.determinate) {
      // A running account's bar: a value between 0 and 100 and "n of m folders" beside it.
      const bars = await page.locator('td.bar-cell').evaluateAll((cells) => cells.map((c) => ({
        now: c.querySelector('[role=progressbar]')?.getAttribute('aria-valuenow'),
        text: c.querySelector('[data-testid=containers]')?.textContent ?? '',
      })));
      state.determinateSeen = JSON.stringify(bars.slice(0, 4));
      const hit = bars.find((b) => b.now !== null && b.now !== undefined && /^(\d+) of (\d+) folders$/.test(b.text) && Number(b.now) < 100);
      if (hit) {
        const [, d, t] = /^(\d+) of (\d+) folders$/.exec(hit.text).map(Number);
        state.determinate = d <= t && t > 0;
      }
    }
    if (seen.size === 2 && state.determinate && !state.progressShot) { await shot(page, 'task-progress'); state.progressShot = true; }
    if (!(await items.count()) && seen.size > 0) break;
    await sleep(300);
  }
  check(seen.size >= 2, `the progress did not move: ${[...seen].join(' | ')}`);
  check(state.determinate, `no account showed a determinate bar with its folders counted: ${state.determinateSeen ?? 'nothing'}`);
  check(streams.includes(200), `the page did not follow the run's event stream: ${JSON.stringify(streams)}`);
  await simPost('latency', { ms: 0 });
  await waitIdle(demo.name);
  await page.getByText('No backup is running.').waitFor({ timeout: 20_000 });
  await page.context().close();
});

test('logs with filters and search', async () => {
  needs('GET /logs', 'GET /tasks/{name}');
  const page = await signedIn('admin');
  await page.goto(`${url}#/admin/task/${demo.name}?tab=logs`);
  await page.locator('.logs tbody tr').first().waitFor();
  const all = await page.locator('.logs tbody tr').count();
  const word = (await page.locator('.logs tbody tr td:nth-child(5)').first().textContent()).split(/\s+/).find((w) => w.length > 4) ?? '';
  await page.getByLabel('Search the log').fill(word);
  await page.getByRole('button', { name: 'Apply' }).click();
  await sleep(800);
  const texts = await page.locator('.logs tbody tr td:nth-child(5)').allTextContents();
  check(texts.length > 0 && texts.length <= all && texts.every((t) => t.toLowerCase().includes(word.toLowerCase())), `search "${word}" returned ${texts.length} records`);
  await shot(page, 'task-logs');
  await page.context().close();
});

test('browse a mailbox at an older point in time', async () => {
  needs('GET /me/accounts', 'GET /tasks/{name}/points', 'GET /tasks/{name}/browse', 'GET /tasks/{name}/item', 'POST /tasks/{name}/runs', 'GET /tasks/{name}');
  // A message that exists at an older run and is deleted before the newest.
  const snap = await simGet(`snapshot?user=${encodeURIComponent(first)}&content=false`);
  const inbox = Object.entries(snap.mail[first]).find(([f]) => /^inbox$/i.test(f));
  check(inbox, `no Inbox in ${Object.keys(snap.mail[first])}`);
  const r1 = await backup(demo.name);
  const listed = (await admin('GET', `tasks/${demo.name}/browse?path=${encodeURIComponent(`/users/${first}/mail/${inbox[0]}`)}&at=${r1.id}`)).body.entries;
  const victim = listed.find((e) => e.kind === 'message' && e.name);
  check(victim, 'no message with a subject in the Inbox');
  await simPost('mutate', { op: 'delete_message', user: first, id: victim.graph_id });
  const r2 = await backup(demo.name);
  check(r2.id > r1.id, 'no newer run');
  state.victim = victim; state.oldRun = r1.id; state.inbox = inbox[0];
  const page = await signedIn('admin');
  await page.goto(`${url}#/admin/restore?task=${encodeURIComponent(demo.name)}&account=${encodeURIComponent(`/users/${first}`)}&path=${encodeURIComponent(`/users/${first}/mail/${inbox[0]}`)}`);
  await page.locator('tbody tr').first().waitFor();
  check(await page.locator(`tr[data-path="${victim.path}"]`).count() === 0, 'the deleted message shows at the newest point');
  await page.getByRole('button', { name: /Point in time/ }).click();
  const day = new Date(r1.started_at);
  const iso = `${day.getFullYear()}-${String(day.getMonth() + 1).padStart(2, '0')}-${String(day.getDate()).padStart(2, '0')}`;
  await page.getByRole('gridcell', { name: new RegExp(`^${iso}`) }).click();
  await page.getByRole('option', { name: new RegExp(`#${r1.id} `) }).click();
  await page.locator(`tr[data-path="${victim.path}"]`).waitFor();
  await page.locator(`tr[data-path="${victim.path}"] .name button`).click();
  await page.locator('iframe[title="Message"]').waitFor();
  await sleep(500);
  await shot(page, 'restore-explorer');
  await page.context().close();
});

test('restore one message and find it in the tenant', async () => {
  needs('POST /tasks/{name}/restores', 'GET /jobs', 'POST /tasks/{name}/runs');
  check(state.victim, 'needs the older point in time of the previous test');
  const before = await simGet(`snapshot?user=${encodeURIComponent(first)}&content=false`);
  const count = (s) => Object.values(s.mail[first]).reduce((n, f) => n + Object.keys(f).length, 0);
  const page = await signedIn('admin');
  await page.goto(`${url}#/admin/restore?task=${encodeURIComponent(demo.name)}&account=${encodeURIComponent(`/users/${first}`)}&path=${encodeURIComponent(`/users/${first}/mail/${state.inbox}`)}&at=${state.oldRun}`);
  await page.locator(`tr[data-path="${state.victim.path}"] input[type=checkbox]`).check();
  await page.getByRole('button', { name: 'Restore', exact: true }).click();
  await page.getByLabel('When an item exists already').selectOption('skip');
  await shot(page, 'restore-dialog');
  await page.getByRole('dialog').getByRole('button', { name: 'Restore' }).click();
  await page.locator('li[data-state="done"], li[data-state="failed"]').first().waitFor({ timeout: 60_000 });
  check(await page.locator('li[data-state="done"]').count() > 0, `the restore job failed: ${await page.locator('.jobs').textContent()}`);
  await shot(page, 'restore-job');
  const after = await simGet(`snapshot?user=${encodeURIComponent(first)}&content=false`);
  check(count(after) === count(before) + 1, `the mailbox has ${count(after)} messages, expected ${count(before) + 1}`);
  await page.context().close();
});

test('export a folder and open the ZIP', async () => {
  needs('POST /tasks/{name}/exports', 'GET /jobs/{id}/download');
  const page = await signedIn('admin');
  await page.goto(`${url}#/admin/restore?task=${encodeURIComponent(demo.name)}&account=${encodeURIComponent(`/users/${first}`)}&path=${encodeURIComponent(`/users/${first}/mail`)}`);
  const inboxPath = `/users/${first}/mail/${state.inbox ?? 'Inbox'}`;
  await page.locator(`tr[data-path="${inboxPath}"] input[type=checkbox]`).check();
  await page.getByRole('button', { name: 'Download as ZIP' }).click();
  const link = page.locator('li[data-state="done"] a', { hasText: 'Download' }).first();
  await link.waitFor({ timeout: 60_000 });
  const [dl] = await Promise.all([page.waitForEvent('download'), link.click()]);
  const file = join(data, 'export.zip');
  await dl.saveAs(file);
  const list = execFileSync('unzip', ['-l', file], { encoding: 'utf8' });
  const emls = list.split('\n').filter((l) => /\.eml\s*$/.test(l));
  // Every message of the folder and of its subfolders.
  const countMessages = async (p) => {
    const entries = (await admin('GET', `tasks/${demo.name}/browse?path=${encodeURIComponent(p)}`)).body.entries;
    let n = entries.filter((e) => e.kind === 'message').length;
    for (const f of entries.filter((e) => e.kind === 'mail_folder')) n += await countMessages(f.path);
    return n;
  };
  const expected = await countMessages(inboxPath);
  check(emls.length === expected && expected > 0, `the ZIP holds ${emls.length} messages, the Inbox ${expected}`);
  execFileSync('unzip', ['-tq', file]);
  await page.context().close();
});

test('portal user sees only their own data, even by editing URLs', async () => {
  needs('GET /me/accounts', 'GET /tasks/{name}/browse', 'GET /tasks/{name}/item/render', 'POST /tasks/{name}/restores');
  const page = await signedIn('portal');
  await page.locator('tbody tr').first().waitFor();
  const options = await page.locator('#ex-account option').allTextContents();
  const mine = (await page.evaluate(() => fetch('api/v1/me/accounts').then((r) => r.json())));
  check(mine.length > 0 && mine.every((a) => a.account === first || a.path.includes(first)), `portal accounts: ${JSON.stringify(mine)}`);
  check(options.length === mine.length, `the account list shows ${options.length} entries`);
  await shot(page, 'portal');
  // Another user's mailbox, by URL: the page shows nothing of it and the API refuses.
  await page.goto(`${url}#/portal?task=${encodeURIComponent(demo.name)}&account=${encodeURIComponent(`/users/${other}`)}&path=${encodeURIComponent(`/users/${other}/mail`)}`);
  await page.getByRole('alert').filter({ hasText: 'Nothing here, or you may not open it.' }).waitFor();
  check(await page.locator('tbody tr').count() === 0, 'another user\'s entries are listed');
  const otherMail = (await admin('GET', `tasks/${demo.name}/browse?path=${encodeURIComponent(`/users/${other}/mail/${state.inbox ?? 'Inbox'}`)}`)).body.entries.find((e) => e.kind === 'message');
  const statuses = await page.evaluate(async ([t, o, p]) => {
    const q = (s) => encodeURIComponent(s);
    const get = (u) => fetch(u).then((r) => r.status);
    return [
      await get(`api/v1/tasks/${q(t)}/browse?path=${q(`/users/${o}/mail`)}`),
      await get(`api/v1/tasks/${q(t)}/item?path=${q(p)}`),
      await get(`api/v1/tasks/${q(t)}/item/render?path=${q(p)}`),
      await get(`api/v1/tasks/${q(t)}/item/content?path=${q(p)}`),
      await get(`api/v1/tasks/${q(t)}/search?q=a&account=${q(o)}`),
      await get('api/v1/tasks'),
    ];
  }, [demo.name, other, otherMail.path]);
  check(statuses.slice(0, 5).every((s) => s === 404 || s === 403), `another user's data answered ${statuses}`);
  check(statuses[5] === 403 || statuses[5] === 404, `the task list answered ${statuses[5]} to a portal user`);
  const restore = await page.evaluate(async ([t, p]) => {
    const s = await fetch('api/v1/session').then((r) => r.json());
    return fetch(`api/v1/tasks/${encodeURIComponent(t)}/restores`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-SYNO-TOKEN': s.csrf_token }, body: JSON.stringify({ paths: [p], conflict: 'skip' }) }).then((r) => r.status);
  }, [demo.name, otherMail.path]);
  check(restore === 404 || restore === 403, `restoring another user's message answered ${restore}`);
  // Search finds their own mail by a word of its subject.
  needs('GET /tasks/{name}/search');
  const own = (await admin('GET', `tasks/${demo.name}/browse?path=${encodeURIComponent(`/users/${first}/mail/${state.inbox ?? 'Inbox'}`)}`)).body.entries.find((e) => e.kind === 'message' && /[A-Za-z]{5,}/.test(e.name));
  const word = own.name.match(/[A-Za-z]{5,}/)[0];
  await page.getByLabel('Search', { exact: true }).fill(word);
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.locator('.hits li').first().waitFor();
  const found = await page.locator('.hits li button').allTextContents();
  check(found.some((t) => t.includes(word)), `searching "${word}" found ${found.join(' | ')}`);
  await page.getByRole('button', { name: 'Clear search' }).click();
  // Their own message, restored into their own mailbox (kept next to the one still there).
  const mailCount = async () => Object.values((await simGet(`snapshot?user=${encodeURIComponent(first)}&content=false`)).mail[first]).reduce((n, f) => n + Object.keys(f).length, 0);
  const before = await mailCount();
  await page.goto(`${url}#/portal?task=${encodeURIComponent(demo.name)}&account=${encodeURIComponent(`/users/${first}`)}&path=${encodeURIComponent(`/users/${first}/mail/${state.inbox ?? 'Inbox'}`)}`);
  await page.locator('tbody tr[data-path] input[type=checkbox]').first().check();
  await page.getByRole('button', { name: 'Restore to my account' }).click();
  check(await page.getByLabel('When an item exists already').inputValue() === 'keep-both', 'the default conflict policy is not keep-both');
  await page.getByRole('dialog').getByRole('button', { name: 'Restore' }).click();
  await page.locator('li[data-state="done"], li[data-state="failed"]').first().waitFor({ timeout: 60_000 });
  check(await page.locator('li[data-state="done"]').count() > 0, `the portal restore failed: ${await page.locator('.jobs').textContent()}`);
  check(await mailCount() === before + 1, 'the portal restore did not add the message');
  // The narrow portal window.
  const narrow = await signedIn('portal', { width: 420, height: 760 });
  await narrow.locator('tbody tr').first().waitFor();
  await shot(narrow, 'portal-narrow');
  await narrow.context().close();
  await page.context().close();
});

test('a script in a message does not run', async () => {
  needs('GET /tasks/{name}/item/render', 'POST /tasks/{name}/runs', 'GET /tasks/{name}');
  const marker = `pwned-${Date.now()}`;
  const html = `<html><body><h1>Quarterly numbers</h1><script>fetch('/${marker}-script');parent.postMessage('${marker}','*');document.title='${marker}'</script>`
    + `<img src="x" onerror="fetch('/${marker}-onerror')"><img src="http://127.0.0.1:9/${marker}-remote.png"><a href="javascript:fetch('/${marker}-js')">link</a>`
    + `<iframe src="javascript:fetch('/${marker}-frame')"></iframe><form action="/${marker}-form"><input name=a></form></body></html>`;
  const mime = [`From: Mallory <mallory@example.com>`, `To: ${first}`, `Subject: Script test ${marker}`, `Date: ${new Date().toUTCString()}`, 'MIME-Version: 1.0', 'Content-Type: text/html; charset=utf-8', '', html, ''].join('\r\n');
  await simPost('mutate', { op: 'add_message', user: first, folder: 'inbox', mime_base64: Buffer.from(mime).toString('base64') });
  await backup(demo.name);
  const hit = (await admin('GET', `tasks/${demo.name}/browse?path=${encodeURIComponent(`/users/${first}/mail/${state.inbox ?? 'Inbox'}`)}`)).body.entries.find((e) => e.name.includes(marker));
  check(hit, 'the message was not backed up');
  const page = await signedIn('portal');
  const requests = [];
  page.context().on('request', (r) => requests.push(r.url()));
  await page.evaluate((mk) => { window.addEventListener('message', (e) => { if (String(e.data).includes(mk)) document.body.dataset.pwned = '1'; }); }, marker);
  await page.goto(`${url}#/portal?task=${encodeURIComponent(demo.name)}&account=${encodeURIComponent(`/users/${first}`)}&path=${encodeURIComponent(`/users/${first}/mail/${state.inbox ?? 'Inbox'}`)}&item=${encodeURIComponent(hit.path)}`);
  const frame = page.locator('iframe[title="Message"]');
  await frame.waitFor();
  check(await frame.getAttribute('sandbox') === '', 'the reader frame is not fully sandboxed');
  await page.frameLocator('iframe[title="Message"]').getByText('Quarterly numbers').waitFor();
  await sleep(1500);
  await shot(page, 'message-reader');
  // The app's own requests name the message (its subject holds the marker); the message's own
  // would go to /<marker>-… or to the remote host.
  const hits = requests.filter((u) => new URL(u).pathname.startsWith(`/${marker}`) || new URL(u).port === '9');
  check(hits.length === 0, `the message made requests: ${hits.join(', ')}`);
  check(!(await page.evaluate(() => document.body.dataset.pwned)), 'the message posted to the page');
  check(!(await page.title()).includes(marker), 'the message changed the title');
  const doc = await page.evaluate((p) => fetch(p).then(async (r) => ({ csp: r.headers.get('content-security-policy'), body: await r.text() })), await frame.getAttribute('src'));
  check(!/<script/i.test(doc.body) && !/onerror/i.test(doc.body) && !/javascript:/i.test(doc.body), 'the rendered message still holds active content');
  check(/sandbox/.test(doc.csp ?? '') && /default-src 'none'/.test(doc.csp ?? ''), `the rendered message's CSP is ${doc.csp}`);
  await page.context().close();
});

test('keyboard: sign in, open a message, restore dialog closes with Escape', async () => {
  needs('GET /me/accounts', 'GET /tasks/{name}/browse', 'GET /tasks/{name}/item');
  const ctx = await browser.newContext({ viewport: { width: 1024, height: 768 } });
  const page = await ctx.newPage();
  await page.goto(`${url}#/portal?task=${encodeURIComponent(demo.name)}&account=${encodeURIComponent(`/users/${first}`)}&path=${encodeURIComponent(`/users/${first}/mail/${state.inbox ?? 'Inbox'}`)}`);
  await page.getByLabel('User name').focus();
  await page.keyboard.type('portal');
  await page.keyboard.press('Tab');
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press('Enter');
  const box = page.locator('tbody tr[data-path] input[type=checkbox]').first();
  await box.waitFor();
  await box.focus();
  await page.keyboard.press('Space');
  check(await box.isChecked(), 'Space did not select the row');
  await page.keyboard.press('Tab');
  const focused = await page.evaluate(() => ({ tag: document.activeElement?.tagName, ring: getComputedStyle(document.activeElement).boxShadow }));
  check(focused.tag === 'BUTTON' && focused.ring !== 'none', `the focused control has no visible focus: ${JSON.stringify(focused)}`);
  await page.keyboard.press('Enter');
  await page.locator('iframe[title="Message"]').waitFor();
  await page.getByRole('button', { name: 'Restore to my account' }).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('dialog').waitFor();
  const inDialog = await page.evaluate(() => !!document.activeElement?.closest('[role=dialog]'));
  check(inDialog, 'the focus did not move into the dialog');
  await page.keyboard.press('Escape');
  await page.getByRole('dialog').waitFor({ state: 'detached' });
  check(await page.evaluate(() => document.activeElement?.textContent?.includes('Restore to my account')), 'the focus did not return to the button that opened the dialog');
  await ctx.close();
});

test('settings', async () => {
  needs('GET /mapping', 'GET /tasks/{name}/storage', 'GET /tasks');
  const page = await signedIn('admin');
  await page.goto(`${url}#/admin/settings`);
  await page.getByRole('heading', { name: 'Portal user mapping' }).waitFor();
  await page.getByRole('cell', { name: 'portal', exact: true }).waitFor();
  await page.locator('.facts').waitFor();
  await shot(page, 'settings');
  await page.context().close();
});

test('notification settings: save, keep, test', async () => {
  needs('GET /settings/notifications', 'PUT /settings/notifications', 'POST /settings/notifications/test');
  const page = await signedIn('admin');
  await page.goto(`${url}#/admin/settings`);
  const form = page.locator('form[aria-labelledby="not-h"]');
  await form.waitFor();
  // A bad recipient is refused with the service's message; nothing is saved.
  await page.getByLabel('DSM users and groups').fill('@administrators\nops; reboot');
  await form.getByRole('button', { name: 'Save' }).click();
  await form.getByRole('alert').filter({ hasText: 'ops; reboot' }).waitFor();
  // Success notices on, the certificate warning at 14 days, two recipients.
  await page.getByLabel('A backup finishes successfully').check();
  await page.getByLabel(/certificate expires within \(days\)/).fill('14');
  await page.getByLabel('DSM users and groups').fill('@administrators\nadmin');
  await form.getByRole('button', { name: 'Save' }).click();
  await form.getByRole('status').filter({ hasText: 'Saved' }).waitFor();
  const saved = (await admin('GET', 'settings/notifications')).body.settings;
  check(saved.run_succeeded === true && saved.certificate_days === 14 && saved.recipients.join() === '@administrators,admin', `saved: ${JSON.stringify(saved)}`);
  await page.getByRole('heading', { name: 'Notifications' }).scrollIntoViewIfNeeded();
  await shot(page, 'settings-notifications');
  // Kept when the page is opened again.
  await page.reload();
  await form.waitFor();
  check(await page.getByLabel('A backup finishes successfully').isChecked(), 'the setting was not kept');
  check((await page.getByLabel('DSM users and groups').inputValue()) === '@administrators\nadmin', 'the recipients were not kept');
  // The test notice: sent where DSM's program exists, else the page says notices go to the log.
  await form.getByRole('button', { name: 'Send a test notification' }).click();
  const said = await Promise.race([
    form.getByRole('status').filter({ hasText: 'Test notification sent' }).waitFor().then(() => 'sent'),
    form.getByRole('alert').filter({ hasText: 'synodsmnotify' }).waitFor().then(() => 'no program'),
  ]);
  const view = (await admin('GET', 'settings/notifications')).body;
  check((said === 'sent') === view.desktop, `test notification: ${said}, desktop program ${view.desktop}`);
  if (!view.desktop) await page.getByText('notices are written to the log only').waitFor();
  // Back to the defaults for the other tests.
  await admin('PUT', 'settings/notifications', {});
  // The refused save (400) and, without DSM's program, the test (422) are expected answers.
  const errors = page.errors.filter((e) => !/status of (400|422)/.test(e));
  check(errors.length === 0, `page errors: ${errors.join('; ')}`);
  await page.context().close();
});

test('overview after several backups', async () => {
  needs('GET /tasks', 'GET /tasks/{name}/storage');
  const page = await signedIn('admin');
  await page.getByRole('heading', { name: 'Backup tasks' }).waitFor();
  await page.getByRole('link', { name: demo.name }).first().waitFor();
  await page.waitForSelector('.chart figure svg, .chart p.muted', { timeout: 15_000 });
  await shot(page, 'overview');
  check(page.errors.length === 0, `page errors: ${page.errors.join('; ')}`);
  await page.context().close();
});

// ---------- run ----------
let failed = 0;
let missing = 0;
let pending = 0;
let ran = 0;
for (const t of tests) {
  if (only.length && !only.some((o) => t.name.includes(o))) continue;
  const t0 = Date.now();
  ran += 1;
  try {
    await setup();
    await t.fn();
    console.log(`ok      ${t.name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    if (e.pending) {
      pending += 1;
      console.log(`PENDING ${t.name} (${((Date.now() - t0) / 1000).toFixed(1)} s): ${e.message.split('\n')[0]}`);
      continue;
    }
    if (e.missing) missing += 1;
    failed += 1;
    console.log(`FAILED  ${t.name} (${((Date.now() - t0) / 1000).toFixed(1)} s): ${e.message.split('\n')[0]}`);
    if (process.env.E2E_VERBOSE) console.log(e.stack);
  }
}
await browser.close();
svc.kill('SIGTERM');
await new Promise((r) => { svc.once('exit', r); setTimeout(r, 5000); });
if (!process.env.E2E_KEEP) rmSync(data, { recursive: true, force: true });
if (process.env.UPDATE_SCREENSHOTS === '1') console.log(`e2e: screenshots written to ${shots}`);
else if (!process.env.E2E_KEEP) rmSync(shots, { recursive: true, force: true });
else console.log(`e2e: screenshots kept in ${shots}`);
console.log(`e2e: ${ran - failed - pending} passed, ${failed} failed${missing ? ` (${missing} for routes not in the service yet)` : ''}${pending ? `, ${pending} pending (see above)` : ''}, ${((Date.now() - started) / 1000).toFixed(0)} s`);
process.exit(failed ? 1 : 0);
