// The typed client of the Backhome API (docs/api.md). Paths are relative so the app works behind
// any URL prefix; every write carries the session's CSRF token.

export interface Session { user: string; admin: boolean; email: string | null; csrf_token: string }

export type Schedule =
  | { kind: 'manual' }
  | { kind: 'continuous' }
  | { kind: 'fixed'; days: number[]; times: string[] };

export type Retention =
  | { kind: 'keep_all' }
  | { kind: 'days'; days: number }
  | { kind: 'runs'; runs: number }
  | { kind: 'gfs'; daily: number; weekly: number; monthly: number; yearly: number };

export type RunStatus = 'running' | 'complete' | 'partial' | 'failed' | 'cancelled' | 'interrupted';

export interface Run {
  id: number; task: string; started_at: string; ended_at: string | null; status: RunStatus;
  items_added: number; items_changed: number; items_deleted: number; bytes_downloaded: number;
  graph_requests: number; item_errors: number; resumed: boolean; throttled: number; error?: string | null;
}

export interface RunDetail extends Run { errors: { object: string; path: string; message: string }[] }

export interface AutoDiscovery { users: boolean; groups: boolean; sites: boolean }

export interface TaskFields {
  name: string; admin_email?: string | null; services: string[];
  include_users: string[]; exclude_users: string[]; include_groups: string[];
  exclude_groups: string[]; include_sites: string[]; exclude_sites: string[];
  auto_discovery: AutoDiscovery; schedule: Schedule; retention: Retention; portal: boolean; repo?: string;
}

export interface Task extends TaskFields {
  repo: string;
  cloud: string; login_endpoint: string | null; graph_endpoint: string | null;
  tenant_id: string; app_id: string;
  certificate: { subject: string; thumbprint: string; not_after: string; expires_in_days: number; warning: string | null } | null;
  state: 'idle' | 'running' | 'queued'; last_run: Run | null; next_run: string | null;
  accounts: number; repository_bytes: number;
}

export type Certificate = { pfx_base64: string; password: string } | { registration_id: string };

export interface Connection {
  cloud: string; login_endpoint?: string; graph_endpoint?: string;
  tenant_id: string; app_id: string; certificate: Certificate;
}

export interface TestResult { ok: boolean; diagnosis: string; sample_user?: unknown }
export interface DirectoryEntry { id: string; name: string; address: string | null }
export interface FoundRepository { path: string; tenant_id: string; runs: number; last_run_at: string | null; task: string | null }
export interface Account { path: string; kind: string; name: string; address: string; items: number; bytes: number }

/** One protected object's progress: containers are mail folders, calendars, drives, channels… */
export interface ObjectProgress {
  items: number; bytes: number; activity: string; done: boolean;
  containers_total?: number; containers_done?: number; containers_pending?: number;
}

export interface Progress {
  run: number; state?: 'queued' | 'running'; items_added: number; items_changed?: number; items_deleted?: number;
  items_unchanged?: number; item_errors?: number; graph_requests?: number; throttled?: number; bytes_downloaded: number;
  objects_total?: number; objects_done?: number;
  objects: Record<string, ObjectProgress>;
}

/** Which events send a DSM notification, and to which DSM users and @groups. */
export interface NotificationSettings {
  run_failed: boolean; run_partial: boolean; run_succeeded: boolean; retention_failed: boolean;
  certificate_expiring: boolean; certificate_days: number; recipients: string[];
}
export interface NotificationsView { settings: NotificationSettings; desktop: boolean }

export interface LogRecord { time: string; level: string; task: string; run: number | null; object: string | null; message: string }
export interface MyAccount { task: string; account: string; path: string; name: string; kind?: string }
export interface Point { run: number; at: string; status: RunStatus }
export interface Entry { name: string; path: string; kind: string; graph_id: string | null; size: number | null; modified: string | null }
export interface Listing { path: string; run: number; entries: Entry[] }

export interface Item {
  entry: Entry; metadata: Record<string, unknown>; versions: { run: number; at: string; size: number }[];
  subject?: string; from?: string; to?: string[] | string; cc?: string[] | string; date?: string;
  attachments?: { name: string; size: number; content_type: string }[];
}

export interface Hit { path: string; name: string; kind: string; account: string; workload: string; modified: string | null; snippet: string }

export interface Job {
  id: string; kind: 'restore' | 'export'; task: string; owner: string;
  state: 'running' | 'done' | 'failed' | 'cancelled';
  progress: { done: number; total: number; bytes: number };
  started_at: string; ended_at: string | null; result: unknown; download: string | null;
}

export interface Storage {
  repository_bytes: number; logical_bytes: number; stored_bytes: number; dedup_ratio: number;
  compression_ratio: number; filesystem: string;
  per_account: { account: string; workload: string; items: number; bytes: number }[];
  per_run: { run: number; at: string; items: number; added_bytes: number; total_bytes: number }[];
  snapshots: { run: number; path: string; created_at: string }[];
}

export interface RegistrationView {
  id: string; state: 'waiting_for_sign_in' | 'working' | 'done' | 'failed' | 'manual'; step?: unknown; code?: string; message?: string;
  sign_in: { user_code: string; verification_uri: string; expires_at: string; message: string } | null;
  result: { tenant_id: string; app_id: string; display_name: string; granted: string[] } | null;
}

export interface Mapping { user: string; accounts: { task: string; account: string }[]; automatic: boolean }

/** An answer other than 2xx, with the API's error code and message. */
export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string) {
    super(message);
  }
}

let csrf = '';

/** Remembers the CSRF token sent with every write. */
export function setCsrf(token: string): void {
  csrf = token;
}

/** Builds a query string, leaving out empty values. */
export function qs(params: Record<string, string | number | boolean | null | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** Calls `api/v1/<path>`; throws [`ApiError`] on failure, returns the parsed JSON (or null). */
export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-SYNO-TOKEN'] = csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`api/v1/${path}`, {
      method, headers, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, 'unreachable', e instanceof Error ? e.message : String(e));
  }
  const text = await res.text();
  let data: unknown = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = (data as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiError(res.status, err?.code ?? `http_${res.status}`, err?.message ?? (text.slice(0, 200) || res.statusText));
  }
  return data as T;
}

const t = (name: string) => `tasks/${encodeURIComponent(name)}`;

/** Every route the UI uses, one function each. */
export const api = {
  session: () => call<Session>('GET', 'session'),
  signIn: (user: string, password: string) => call<Session>('POST', 'session', { user, password }),
  signOut: () => call<null>('DELETE', 'session'),

  tasks: () => call<Task[]>('GET', 'tasks'),
  task: (name: string) => call<Task>('GET', t(name)),
  testConnection: (c: Connection) => call<TestResult>('POST', 'tasks/test-connection', c),
  directory: (c: Connection, kind: 'users' | 'groups' | 'sites', q: string, top = 50) =>
    call<DirectoryEntry[]>('POST', 'directory', { ...c, kind, q, top }),
  createTask: (c: Connection, f: TaskFields) => call<Task>('POST', 'tasks', { ...c, ...f }),
  relink: (c: Connection, name: string, repo: string) => call<Task>('POST', 'tasks/relink', { ...c, name, repo }),
  updateTask: (name: string, patch: Partial<TaskFields> & { certificate?: Certificate }) => call<Task>('PATCH', t(name), patch),
  deleteTask: (name: string, deleteData: boolean) => call<null>('DELETE', `${t(name)}${qs({ delete_data: deleteData })}`),
  repositories: (root: string) => call<FoundRepository[]>('GET', `repositories${qs({ root })}`),
  accounts: (name: string) => call<Account[]>('GET', `${t(name)}/accounts`),

  startRun: (name: string) => call<Run>('POST', `${t(name)}/runs`),
  cancelRun: (name: string) => call<null>('POST', `${t(name)}/cancel`),
  renewCertificate: (name: string) => call<unknown>('POST', `${t(name)}/certificate/renew`, {}),
  runs: (name: string) => call<Run[]>('GET', `${t(name)}/runs`),
  run: (name: string, id: number) => call<RunDetail>('GET', `${t(name)}/runs/${id}`),
  progress: (name: string) => call<Progress>('GET', `${t(name)}/progress`),
  logs: (p: { task?: string; run?: number; level?: string; object?: string; q?: string; limit?: number; before?: string }) =>
    call<LogRecord[]>('GET', `logs${qs(p)}`),

  myAccounts: () => call<MyAccount[]>('GET', 'me/accounts'),
  points: (name: string) => call<Point[]>('GET', `${t(name)}/points`),
  browse: (name: string, path: string, at?: string | number) => call<Listing>('GET', `${t(name)}/browse${qs({ path, at })}`),
  item: (name: string, path: string, at?: string | number) => call<Item>('GET', `${t(name)}/item${qs({ path, at })}`),
  search: (name: string, p: { q: string; account?: string; workload?: string; at?: string | number; limit?: number }) =>
    call<Hit[]>('GET', `${t(name)}/search${qs(p)}`),

  restore: (name: string, body: { at: string | number; paths: string[]; target_user?: string; target_folder?: string; conflict: string }) =>
    call<Job>('POST', `${t(name)}/restores`, body),
  exportItems: (name: string, body: { at: string | number; paths: string[]; format: 'zip' | 'mbox' }) =>
    call<Job>('POST', `${t(name)}/exports`, body),
  jobs: () => call<Job[]>('GET', 'jobs'),
  job: (id: string) => call<Job>('GET', `jobs/${encodeURIComponent(id)}`),
  cancelJob: (id: string) => call<null>('POST', `jobs/${encodeURIComponent(id)}/cancel`),

  startRegistration: (body: { mode: 'automatic' | 'manual'; cloud: string; login_endpoint?: string; graph_endpoint?: string }) =>
    call<RegistrationView>('POST', 'registrations', body),
  registration: (id: string) => call<RegistrationView>('GET', `registrations/${encodeURIComponent(id)}`),
  cancelRegistration: (id: string) => call<null>('DELETE', `registrations/${encodeURIComponent(id)}`),

  storage: (name: string) => call<Storage>('GET', `${t(name)}/storage`),
  mapping: () => call<Mapping[]>('GET', 'mapping'),
  setMapping: (user: string, accounts: { task: string; account: string }[]) =>
    call<Mapping>('PUT', `mapping/${encodeURIComponent(user)}`, { accounts }),
  resetMapping: (user: string) => call<null>('DELETE', `mapping/${encodeURIComponent(user)}`),
  notifications: () => call<NotificationsView>('GET', 'settings/notifications'),
  setNotifications: (s: NotificationSettings) => call<NotificationsView>('PUT', 'settings/notifications', s),
  testNotification: () => call<{ recipients: string[] }>('POST', 'settings/notifications/test', {}),
};

/** URLs the browser opens itself (downloads, the sandboxed message reader). */
export const urls = {
  content: (name: string, path: string, at: string | number | undefined, download: boolean) =>
    `api/v1/${t(name)}/item/content${qs({ path, at, download: download ? 1 : undefined })}`,
  progressStream: (name: string) => `api/v1/${t(name)}/progress/stream`,
  render: (name: string, path: string, at: string | number | undefined) =>
    `api/v1/${t(name)}/item/render${qs({ path, at })}`,
  jobDownload: (id: string) => `api/v1/jobs/${encodeURIComponent(id)}/download`,
};
