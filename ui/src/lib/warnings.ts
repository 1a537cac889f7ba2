// What on the overview needs an administrator's attention, derived from the task views.
import type { Task } from './api';
import { m } from './messages';

export interface Warning { task: string; level: 'error' | 'warn'; text: string }

/** The warnings of every task, errors first. */
export function warnings(tasks: Task[]): Warning[] {
  const out: Warning[] = [];
  for (const t of tasks) {
    const r = t.last_run;
    if (!r && t.state === 'idle') out.push({ task: t.name, level: 'warn', text: m.warn.never(t.name) });
    else if (r?.status === 'failed') out.push({ task: t.name, level: 'error', text: m.warn.failed(t.name) });
    else if (r?.status === 'partial' || (r && r.status === 'complete' && r.item_errors > 0))
      out.push({ task: t.name, level: 'warn', text: m.warn.partial(t.name, r.item_errors) });
    else if (r?.status === 'interrupted') out.push({ task: t.name, level: 'warn', text: m.warn.interrupted(t.name) });
    const c = t.certificate;
    if (c) {
      if (c.expires_in_days < 0) out.push({ task: t.name, level: 'error', text: m.warn.certExpired(t.name) });
      else if (c.expires_in_days <= 30 || c.warning) out.push({ task: t.name, level: 'warn', text: c.warning ?? m.warn.certificate(t.name, c.expires_in_days) });
    }
  }
  return out.sort((a, b) => (a.level === b.level ? 0 : a.level === 'error' ? -1 : 1));
}
