import { enc, getJson, throttle, type SessionRow } from './api.js';
import { ago, clear, clip, fmtInt, fmtTime, fmtUsd, h } from './dom.js';
import { liveBadge, nav } from './nav.js';

interface LiveDoc {
  source: string;
  at: string;
  sessions: SessionRow[];
  alerts: Array<{ rule: string; session_id: string; message: string; fired_at: string }>;
}

export function livePage(root: HTMLElement): () => void {
  const ac = new AbortController();
  const badge = liveBadge();
  const sessions = h('table', { class: 'sessions', id: 'live-sessions' });
  const alerts = h('ul', { class: 'alerts', id: 'alerts' });
  const status = h('p', { class: 'status' });
  root.append(
    nav('live'),
    h('main', {}, h('header', { class: 'page' }, h('h1', {}, 'Live'), badge.el), status, h('div', { class: 'live-grid' }, h('section', {}, h('h2', {}, 'Active sessions'), sessions), h('section', {}, h('h2', {}, 'Alerts'), alerts))),
  );
  // Events per second from the change between two snapshots, as kshark top shows it.
  let prev = new Map<string, { count: number; at: number }>();
  const load = async () => {
    let doc: LiveDoc;
    try {
      doc = await getJson<LiveDoc>('/api/live', ac.signal);
    } catch (err) {
      if (ac.signal.aborted) return;
      status.textContent = `Could not load: ${(err as Error).message}`;
      status.classList.add('error');
      return;
    }
    status.classList.remove('error');
    status.textContent = `${doc.sessions.length} active · source ${doc.source} · ${fmtTime(doc.at)}`;
    const now = Date.parse(doc.at);
    const next = new Map<string, { count: number; at: number }>();
    clear(sessions);
    sessions.append(
      h('thead', {}, h('tr', {}, ...['session', 'agent', 'current step', 'events', 'events/s', 'cost so far', 'errors', 'last'].map((c) => h('th', {}, c)))),
      h(
        'tbody',
        {},
        ...doc.sessions.map((r) => {
          const p = prev.get(r.session_id);
          next.set(r.session_id, { count: r.event_count, at: now });
          const rate = p && now > p.at ? ((r.event_count - p.count) * 1000) / (now - p.at) : undefined;
          return h(
            'tr',
            { data: { session: r.session_id } },
            h('td', {}, h('a', { href: `#/session/${enc(r.session_id)}` }, r.session_id)),
            h('td', {}, r.agent_id),
            h('td', { class: 'step' }, r.current_step),
            h('td', { class: 'num' }, fmtInt(r.event_count)),
            h('td', { class: 'num' }, rate === undefined ? '' : rate.toFixed(1)),
            h('td', { class: 'num' }, fmtUsd(r.cost_usd)),
            h('td', { class: 'num' }, r.error_count > 0 ? fmtInt(r.error_count) : ''),
            h('td', {}, ago(r.last_ts, now)),
          );
        }),
      ),
    );
    prev = next;
    clear(alerts);
    if (doc.alerts.length === 0) alerts.append(h('li', { class: 'muted' }, 'No alerts.'));
    for (const a of doc.alerts) alerts.append(h('li', {}, h('span', { class: 'rule' }, a.rule), ' ', h('a', { href: `#/session/${enc(a.session_id)}` }, a.session_id), ' ', h('span', {}, clip(a.message, 500)), ' ', h('span', { class: 'muted' }, fmtTime(a.fired_at))));
    document.body.dataset.ready = 'live';
  };
  void load();
  const refresh = throttle(1000, load);
  const es = new EventSource('/api/stream');
  es.addEventListener('ready', () => badge.set('live'));
  es.addEventListener('update', refresh);
  es.onerror = () => badge.set('offline', 'reconnecting');
  // Sessions also leave the active list by timing out, which announces nothing: look again now and then.
  const timer = setInterval(refresh, 5000);
  return () => {
    ac.abort();
    es.close();
    clearInterval(timer);
  };
}
