import { enc, getJson, type AgentEvent, type SessionDoc } from './api.js';
import { append, clear, clip, fmtInt, fmtMs, fmtTime, fmtUsd, h, pretty } from './dom.js';
import { liveBadge, nav } from './nav.js';
import { buildRows, nextError, type Row } from './waterfall.js';

const ROW_H = 26;
const OVERSCAN = 12;
/** Characters of one field shown before "show all" (a megabyte of output would stall layout). */
const FIELD_MAX = 20_000;

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

function isOffloadRef(v: unknown): boolean {
  return typeof v === 'object' && v !== null && '$offload' in v;
}

function errorText(err: { name?: unknown; message?: unknown; stack?: unknown }): string {
  const head = [err.name, err.message].filter((x) => typeof x === 'string').join(': ');
  if (typeof err.stack !== 'string') return head;
  // A JavaScript stack already starts with "Name: message".
  return err.stack.startsWith(head) ? err.stack : `${head}\n${err.stack}`;
}

export function sessionPage(root: HTMLElement, sessionId: string, query: URLSearchParams): () => void {
  const ac = new AbortController();
  const badge = liveBadge();
  let es: EventSource | undefined;
  let events: AgentEvent[] = [];
  const seen = new Set<string>();
  const unfolded = new Set<string>();
  let rows: Row[] = [];
  let span = 1;
  let selected = -1;
  let wantStep = query.get('step') ?? undefined;
  let frame = 0;

  const summary = h('section', { class: 'summary', id: 'session-summary' });
  const warnings = h('ul', { class: 'warnings' });
  const spacer = h('div', { class: 'spacer' });
  const viewport = h('div', { class: 'vlist', id: 'waterfall', tabindex: '0', role: 'listbox', aria: { label: 'steps' } }, spacer);
  const detail = h('aside', { class: 'detail', id: 'step-detail' }, h('p', { class: 'muted' }, 'Select a step.'));
  const compareInput = h('input', { name: 'compare', placeholder: 'other session id' });
  root.append(
    nav('session'),
    h(
      'main',
      { class: 'session' },
      h('header', { class: 'page' }, h('h1', {}, 'Session ', h('code', {}, sessionId)), badge.el),
      summary,
      warnings,
      h(
        'div',
        { class: 'toolbar' },
        h('span', { class: 'keys' }, 'keys: j/k move · e/E next/previous error · enter fold/unfold · g/G first/last'),
        h(
          'form',
          { class: 'inline', on: { submit: (ev) => {
            ev.preventDefault();
            const other = compareInput.value.trim();
            if (other) location.hash = `#/compare?a=${enc(sessionId)}&b=${enc(other)}`;
          } } },
          compareInput,
          h('button', { type: 'submit' }, 'compare'),
        ),
      ),
      h('div', { class: 'split' }, viewport, detail),
    ),
  );

  const renderVisible = () => {
    frame = 0;
    const top = viewport.scrollTop;
    const height = viewport.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const last = Math.min(rows.length, Math.ceil((top + height) / ROW_H) + OVERSCAN);
    spacer.style.height = `${rows.length * ROW_H}px`;
    clear(spacer);
    for (let i = first; i < last; i++) spacer.appendChild(rowEl(rows[i]!, i));
  };
  const schedule = () => {
    if (frame === 0) frame = requestAnimationFrame(renderVisible);
  };
  viewport.addEventListener('scroll', schedule);

  const rowEl = (r: Row, i: number): HTMLElement => {
    const e = r.main;
    const left = (r.startMs / span) * 100;
    const width = Math.max(0.2, ((r.latencyMs ?? 0) / span) * 100);
    const cls = ['row', r.isError ? 'err' : '', i === selected ? 'selected' : '', r.count > 1 ? 'fold' : '', r.member ? 'member' : ''].filter(Boolean).join(' ');
    return h(
      'div',
      { class: cls, role: 'option', style: { top: `${i * ROW_H}px` }, data: { index: String(i), key: r.key, type: e.event_type }, on: { click: () => select(i, true) } },
      h('span', { class: 'at' }, `+${fmtMs(r.startMs)}`),
      h(
        'span',
        { class: 'name', style: { paddingLeft: `${r.depth * 16}px` } },
        h('span', { class: `type t-${e.event_type}` }, e.event_type),
        ' ',
        h('span', { class: 'label' }, clip(r.label, 120)),
        r.count > 1
          ? h(
              'button',
              { type: 'button', class: 'fold-badge', title: r.folded ? 'unfold the loop' : 'fold the loop', on: { click: (ev) => {
                ev.stopPropagation();
                toggleFold(r);
              } } },
              `${r.folded ? '▸' : '▾'} ×${r.count}${r.failures > 0 ? ` · ${r.failures} failed` : ''}`,
            )
          : null,
      ),
      h('span', { class: 'agent' }, clip(e.agent_id, 40)),
      h('span', { class: 'track' }, h('span', { class: 'bar', style: { left: `${Math.min(99.8, left)}%`, width: `${Math.min(100 - Math.min(99.8, left), width)}%` } })),
      h('span', { class: 'lat' }, fmtMs(r.latencyMs)),
      h('span', { class: 'cost' }, fmtUsd(r.costUsd)),
    );
  };

  const toggleFold = (r: Row) => {
    if (r.count < 2) return;
    if (unfolded.has(r.key)) unfolded.delete(r.key);
    else unfolded.add(r.key);
    rebuild(r.key);
  };

  const rebuild = (keepKey?: string) => {
    const key = keepKey ?? rows[selected]?.key;
    const b = buildRows(events, { unfolded });
    rows = b.rows;
    span = Math.max(1, b.t1 - b.t0);
    selected = key === undefined ? selected : rows.findIndex((r) => r.key === key);
    renderSummary();
    renderVisible();
  };

  const select = (i: number, fromClick = false) => {
    if (i < 0 || i >= rows.length) return;
    selected = i;
    const top = i * ROW_H;
    if (top < viewport.scrollTop) viewport.scrollTop = top;
    else if (top + ROW_H > viewport.scrollTop + viewport.clientHeight) viewport.scrollTop = top + ROW_H - viewport.clientHeight;
    renderVisible();
    renderDetail(rows[i]!);
    history.replaceState(null, '', `#/session/${enc(sessionId)}?step=${enc(rows[i]!.main.event_id)}`);
    if (fromClick) viewport.focus({ preventScroll: true });
  };

  const modelBefore = (e: AgentEvent): string | undefined => {
    const own = e.payload?.model;
    if (typeof own === 'string') return own;
    let m: string | undefined;
    for (const x of events) {
      if (x === e) break;
      if (x.event_type === 'llm_call' && typeof x.payload?.model === 'string') m = x.payload.model;
    }
    return m;
  };

  const field = (label: string, value: unknown, e?: AgentEvent, path?: string): HTMLElement | null => {
    if (value === undefined || value === null || value === '') return null;
    const full = pretty(value);
    const pre = h('pre', { class: 'value' }, clip(full, FIELD_MAX));
    const more = full.length > FIELD_MAX ? h('button', { type: 'button', on: { click: () => {
      pre.textContent = clip(full, full.length);
      more?.remove();
    } } }, 'show all') : null;
    const load = e && path && isOffloadRef(value) && e.offload && !e.offload.failed ? h('button', { type: 'button', class: 'load-offload', on: { click: () => void loadOffloaded(e) } }, 'load offloaded payload') : null;
    return h('div', { class: 'field' }, h('h3', {}, label), pre, more, load);
  };

  const kv = (k: string, v: string | undefined) => (v ? h('div', { class: 'kv' }, h('span', { class: 'k' }, k), h('span', { class: 'v' }, v)) : null);

  const renderDetail = (r: Row) => {
    const e = r.main;
    const p = e.payload ?? {};
    const c = e.context ?? {};
    clear(detail);
    const err = p.error as { name?: unknown; message?: unknown; stack?: unknown } | undefined;
    append(
      detail,
      h('h2', {}, h('span', { class: `type t-${e.event_type}` }, e.event_type), ' ', clip(r.label, 200)),
      r.count > 1 ? h('p', { class: 'fold-note' }, `Retry loop: ${r.count} consecutive calls, ${r.failures} failed. Showing the last attempt.`) : null,
      h(
        'div',
        { class: 'kvs' },
        kv('status', e.status),
        kv('agent', clip(e.agent_id, 200)),
        kv('time', fmtTime(e.timestamp)),
        kv('seq', String(e.seq)),
        kv('model', modelBefore(e) !== undefined ? clip(modelBefore(e)!, 200) : undefined),
        kv('tokens', num(p.input_tokens) !== undefined || num(p.output_tokens) !== undefined ? `in ${fmtInt(num(p.input_tokens) ?? 0)} · out ${fmtInt(num(p.output_tokens) ?? 0)}` : undefined),
        kv('cost', fmtUsd(r.costUsd)),
        kv('latency', fmtMs(r.latencyMs)),
        kv('confidence', num(c.confidence) !== undefined ? String(num(c.confidence)) : undefined),
        kv('event', e.event_id),
      ),
      field('reasoning', c.reasoning),
      field('input', p.input ?? p.task ?? p.options, e, 'payload.input'),
      field('output', p.output, e, 'payload.output'),
      err ? field('error', errorText(err)) : null,
      r.count > 1 && r.failures > 0 ? field('failures', r.events.filter((x) => x.status === 'error').slice(0, 5).map((x) => `#${x.seq} ${fmtTime(x.timestamp)} ${String((x.payload?.error as { message?: unknown } | undefined)?.message ?? '')}`).join('\n')) : null,
    );
  };

  const loadOffloaded = async (e: AgentEvent) => {
    try {
      const doc = await getJson<{ event: AgentEvent; warnings: string[] }>(`/api/sessions/${enc(sessionId)}/events/${enc(e.event_id)}/payload`, ac.signal);
      events = events.map((x) => (x.event_id === e.event_id ? doc.event : x));
      rebuild();
      if (rows[selected]) renderDetail(rows[selected]!);
      for (const w of doc.warnings) append(warnings, h('li', {}, w));
    } catch (err) {
      append(warnings, h('li', {}, `Could not load the payload: ${(err as Error).message}`));
    }
  };

  const renderSummary = () => {
    let cost = 0;
    let inTok = 0;
    let outTok = 0;
    let errors = 0;
    const agents = new Set<string>();
    for (const e of events) {
      cost += num(e.payload?.cost_usd) ?? 0;
      inTok += num(e.payload?.input_tokens) ?? 0;
      outTok += num(e.payload?.output_tokens) ?? 0;
      if (e.status === 'error' || e.event_type === 'error') errors++;
      agents.add(e.agent_id);
    }
    const end = events.find((e) => e.event_type === 'session_end');
    clear(summary);
    append(
      summary,
      kv('events', fmtInt(events.length)),
      kv('steps shown', fmtInt(rows.length)),
      kv('duration', fmtMs(span)),
      kv('agents', clip([...agents].join(', '), 200)),
      kv('tokens', `in ${fmtInt(inTok)} · out ${fmtInt(outTok)}`),
      kv('cost', fmtUsd(cost)),
      kv('errors', fmtInt(errors)),
      kv('outcome', end ? end.status : 'running'),
    );
  };

  const onKey = (ev: KeyboardEvent) => {
    const t = ev.target as HTMLElement | null;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT')) return;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    let handled = true;
    if (ev.key === 'j' || ev.key === 'ArrowDown') select(Math.min(rows.length - 1, selected + 1));
    else if (ev.key === 'k' || ev.key === 'ArrowUp') select(Math.max(0, selected - 1));
    else if (ev.key === 'e' || ev.key === 'E') {
      const i = nextError(rows, selected < 0 ? (ev.key === 'e' ? -1 : 0) : selected, ev.key === 'e' ? 1 : -1);
      if (i >= 0) select(i);
    } else if (ev.key === 'Enter' && rows[selected]) toggleFold(rows[selected]!);
    else if (ev.key === 'g') select(0);
    else if (ev.key === 'G') select(rows.length - 1);
    else handled = false;
    if (handled) ev.preventDefault();
  };
  document.addEventListener('keydown', onKey);

  const addEvents = (more: AgentEvent[]) => {
    let added = false;
    for (const e of more) {
      if (seen.has(e.event_id)) continue;
      seen.add(e.event_id);
      events.push(e);
      added = true;
    }
    return added;
  };

  const load = async () => {
    const status = h('p', { class: 'status' }, 'loading…');
    summary.append(status);
    let doc: SessionDoc;
    try {
      doc = await getJson<SessionDoc>(`/api/sessions/${enc(sessionId)}`, ac.signal);
    } catch (err) {
      if (ac.signal.aborted) return;
      status.textContent = `Could not open the session: ${(err as Error).message}`;
      status.classList.add('error');
      badge.set('offline');
      return;
    }
    performance.mark('session-fetched');
    addEvents(doc.events);
    for (const w of doc.warnings) append(warnings, h('li', {}, w));
    const b = buildRows(events, { unfolded });
    rows = b.rows;
    span = Math.max(1, b.t1 - b.t0);
    renderSummary();
    append(summary, kv('source', doc.partition !== null ? `${doc.source}, partition ${doc.partition}` : doc.source));
    let start = 0;
    if (wantStep) {
      const i = rows.findIndex((r) => r.events.some((e) => e.event_id === wantStep));
      if (i >= 0) start = i;
      wantStep = undefined;
    }
    if (rows.length > 0) select(start);
    else renderVisible();
    document.body.dataset.ready = 'session';
    performance.mark('session-interactive');
    es = new EventSource(`/api/sessions/${enc(sessionId)}/stream?cursor=${enc(JSON.stringify(doc.cursor))}`);
    es.addEventListener('ready', () => badge.set('live'));
    es.addEventListener('events', (ev) => {
      // On the last step, the view follows new steps as they arrive (like tail -f).
      const tail = selected === rows.length - 1;
      if (!addEvents(JSON.parse((ev as MessageEvent<string>).data) as AgentEvent[])) return;
      rebuild();
      if (tail) select(rows.length - 1);
    });
    es.addEventListener('warning', (ev) => append(warnings, h('li', {}, (JSON.parse((ev as MessageEvent<string>).data) as { message: string }).message)));
    es.onerror = () => badge.set('offline', 'reconnecting');
  };
  void load();
  return () => {
    ac.abort();
    es?.close();
    document.removeEventListener('keydown', onKey);
    if (frame) cancelAnimationFrame(frame);
  };
}
