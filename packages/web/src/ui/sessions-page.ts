import { enc, getJson, throttle, type SessionRow } from './api.js';
import { ago, clear, fmtInt, fmtTime, fmtUsd, h } from './dom.js';
import { liveBadge, nav } from './nav.js';

const SORTS: Array<[string, string]> = [
  ['last', 'most recent activity'],
  ['start', 'most recently started'],
  ['tools', 'most tool calls'],
  ['cost', 'most expensive'],
  ['events', 'most events'],
  ['errors', 'most errors'],
];
const FILTERS = ['agent', 'status', 'since', 'min_cost', 'sort', 'limit'] as const;

export function sessionsPage(root: HTMLElement, query: URLSearchParams): () => void {
  const ac = new AbortController();
  const badge = liveBadge();
  const field = (name: (typeof FILTERS)[number]) => query.get(name) ?? '';
  const apply = (changes: Record<string, string>) => {
    const q = new URLSearchParams();
    for (const f of FILTERS) {
      const v = f in changes ? changes[f]! : field(f);
      if (v) q.set(f, v);
    }
    location.hash = `#/sessions?${q.toString()}`;
  };
  const input = (name: (typeof FILTERS)[number], placeholder: string) =>
    h('input', { name, placeholder, value: field(name), on: { change: (ev) => apply({ [name]: (ev.target as HTMLInputElement).value.trim() }) } });
  const select = (name: (typeof FILTERS)[number], options: Array<[string, string]>) => {
    const s = h('select', { name, on: { change: (ev) => apply({ [name]: (ev.target as HTMLSelectElement).value }) } }, ...options.map(([v, label]) => h('option', { value: v }, label)));
    s.value = field(name) || options[0]![0];
    return s;
  };
  const sort = field('sort') || 'last';
  const rankings = h(
    'div',
    { class: 'rankings' },
    ...SORTS.map(([v, label]) => h('button', { type: 'button', class: v === sort ? 'active' : '', data: { sort: v }, on: { click: () => apply({ sort: v }) } }, label)),
  );
  const status = h('p', { class: 'status' });
  const table = h('table', { class: 'sessions', id: 'sessions-table' });
  root.append(
    nav('sessions'),
    h(
      'main',
      {},
      h('header', { class: 'page' }, h('h1', {}, 'Sessions'), badge.el),
      h(
        'form',
        { class: 'filters', on: { submit: (ev) => ev.preventDefault() } },
        h('label', {}, 'agent ', input('agent', 'invoice-agent')),
        h('label', {}, 'status ', select('status', [['', 'any'], ['active', 'active'], ['completed', 'completed'], ['error', 'error']])),
        h('label', {}, 'since ', input('since', '-1h')),
        h('label', {}, 'min cost $ ', input('min_cost', '0.05')),
        h('label', {}, 'limit ', input('limit', '50')),
      ),
      rankings,
      status,
      table,
    ),
  );

  const api = new URLSearchParams();
  for (const f of FILTERS) if (field(f)) api.set(f, field(f));
  const load = async () => {
    try {
      const doc = await getJson<{ source: string; sessions: SessionRow[] }>(`/api/sessions?${api.toString()}`, ac.signal);
      render(doc.sessions);
      status.textContent = `${doc.sessions.length} sessions · source ${doc.source} · ranked by ${SORTS.find(([v]) => v === sort)?.[1] ?? sort}`;
      status.classList.remove('error');
      document.body.dataset.ready = 'sessions';
    } catch (err) {
      if (ac.signal.aborted) return;
      status.textContent = `Could not list sessions: ${(err as Error).message}`;
      status.classList.add('error');
    }
  };
  const render = (rows: SessionRow[]) => {
    clear(table);
    const now = Date.now();
    table.append(
      h('thead', {}, h('tr', {}, ...['session', 'agent', 'started', 'last', 'events', 'tools', 'status', 'cost', 'errors', 'current step'].map((c) => h('th', {}, c)))),
      h(
        'tbody',
        {},
        ...rows.map((r) =>
          h(
            'tr',
            { class: `status-${r.status}`, data: { session: r.session_id } },
            h('td', {}, h('a', { href: `#/session/${enc(r.session_id)}` }, r.session_id)),
            h('td', {}, r.agent_id),
            h('td', {}, fmtTime(r.first_ts)),
            h('td', {}, ago(r.last_ts, now)),
            h('td', { class: 'num' }, `${fmtInt(r.event_count)}${r.partial ? '+' : ''}`),
            h('td', { class: 'num tools' }, fmtInt(r.tool_calls)),
            h('td', { class: 'status' }, r.status),
            h('td', { class: 'num' }, fmtUsd(r.cost_usd)),
            h('td', { class: 'num' }, r.error_count > 0 ? fmtInt(r.error_count) : ''),
            h('td', { class: 'step' }, r.current_step),
          ),
        ),
      ),
    );
  };
  void load();
  const refresh = throttle(500, load);
  const es = new EventSource('/api/stream');
  es.addEventListener('ready', () => badge.set('live'));
  es.addEventListener('update', refresh);
  es.addEventListener('warning', (ev) => badge.set('offline', (JSON.parse((ev as MessageEvent<string>).data) as { message: string }).message));
  es.onerror = () => badge.set('offline', 'reconnecting');
  return () => {
    ac.abort();
    es.close();
  };
}
