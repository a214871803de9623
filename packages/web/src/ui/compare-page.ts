import { enc, getJson } from './api.js';
import { append, clip, fmtMs, fmtUsd, h, pretty } from './dom.js';
import { nav } from './nav.js';

interface StepJson {
  index: number;
  event_type: string;
  label: string;
  agent_id?: string;
  status?: string;
  event_id?: string;
  depth?: number;
  latency_ms?: number;
  cost_usd?: number;
}

interface Change {
  path: string;
  kind: string;
  a?: unknown;
  b?: unknown;
}

interface EntryJson {
  op: 'same' | 'changed' | 'removed' | 'added';
  a: StepJson | null;
  b: StepJson | null;
  changes?: Change[];
  changes_omitted?: number;
}

interface CompareDoc {
  identical: boolean;
  a: { name: string; source?: string; warnings: string[] };
  b: { name: string; source?: string; warnings: string[] };
  alignment: string;
  summary: { same: number; changed: number; only_in_a: number; only_in_b: number; latency_delta_ms: number; cost_delta_usd: number; error_only_in: string | null; a: { outcome: string | null; steps: number }; b: { outcome: string | null; steps: number } };
  divergence: { entry: number; op: string; a: StepJson | null; b: StepJson | null; changes: Change[] } | null;
  entries: EntryJson[];
}

const OPS: Record<EntryJson['op'], string> = { same: '=', changed: '≠', removed: '−', added: '+' };

function stepCell(s: StepJson | null, session: string): HTMLElement {
  if (!s) return h('td', { class: 'empty' });
  const label = h('span', {}, h('span', { class: `type t-${s.event_type}` }, s.event_type), ' ', clip(s.label, 100), s.status === 'error' ? h('span', { class: 'err-tag' }, ' error') : null);
  return h('td', { style: { paddingLeft: `${(s.depth ?? 0) * 16 + 6}px` } }, s.event_id ? h('a', { href: `#/session/${enc(session)}?step=${enc(s.event_id)}` }, label) : label);
}

function changeText(c: Change): string {
  const v = (x: unknown) => (x === undefined ? '∅' : clip(pretty(x).replace(/\s+/g, ' '), 200));
  return `${c.path}: ${v(c.a)} → ${v(c.b)}`;
}

export function comparePage(root: HTMLElement, query: URLSearchParams): () => void {
  const ac = new AbortController();
  const a = query.get('a') ?? '';
  const b = query.get('b') ?? '';
  const inA = h('input', { name: 'a', placeholder: 'session A', value: a });
  const inB = h('input', { name: 'b', placeholder: 'session B', value: b });
  const out = h('section', { id: 'compare-result' });
  root.append(
    nav('compare'),
    h(
      'main',
      {},
      h('header', { class: 'page' }, h('h1', {}, 'Compare')),
      h(
        'form',
        { class: 'filters', on: { submit: (ev) => {
          ev.preventDefault();
          location.hash = `#/compare?a=${enc(inA.value.trim())}&b=${enc(inB.value.trim())}`;
        } } },
        h('label', {}, 'A ', inA),
        h('label', {}, 'B ', inB),
        h('button', { type: 'submit' }, 'compare'),
      ),
      out,
    ),
  );
  if (!a || !b) {
    append(out, h('p', { class: 'muted' }, 'Give two session ids; steps are aligned as kdiff aligns them.'));
    return () => ac.abort();
  }
  const status = h('p', { class: 'status' }, 'comparing…');
  out.append(status);
  void (async () => {
    let doc: CompareDoc;
    try {
      doc = await getJson<CompareDoc>(`/api/compare?a=${enc(a)}&b=${enc(b)}`, ac.signal);
    } catch (err) {
      if (ac.signal.aborted) return;
      status.textContent = `Could not compare: ${(err as Error).message}`;
      status.classList.add('error');
      return;
    }
    const s = doc.summary;
    status.textContent = doc.identical ? 'The sessions take the same steps.' : `${s.same} same · ${s.changed} changed · ${s.only_in_a} only in A · ${s.only_in_b} only in B · latency ${s.latency_delta_ms >= 0 ? '+' : ''}${fmtMs(s.latency_delta_ms)} · cost ${s.cost_delta_usd >= 0 ? '+' : '−'}${fmtUsd(Math.abs(s.cost_delta_usd))} · outcome A ${s.a.outcome ?? '—'}, B ${s.b.outcome ?? '—'} · alignment ${doc.alignment}`;
    const d = doc.divergence;
    if (d) {
      const side = (x: StepJson | null) => (x ? `${x.event_type} ${x.label}${x.status === 'error' ? ' (error)' : ''}` : 'nothing (the session ended)');
      append(
        out,
        h(
          'div',
          { class: 'divergence-banner', id: 'divergence-banner' },
          h('strong', {}, `First divergence at step ${d.entry + 1}: `),
          h('span', {}, 'A did '),
          h('code', {}, clip(side(d.a), 200)),
          h('span', {}, ', B did '),
          h('code', {}, clip(side(d.b), 200)),
          d.changes.length > 0 ? h('ul', {}, ...d.changes.slice(0, 8).map((c) => h('li', {}, changeText(c)))) : null,
        ),
      );
    }
    for (const w of [...doc.a.warnings.map((x) => `A: ${x}`), ...doc.b.warnings.map((x) => `B: ${x}`)]) append(out, h('p', { class: 'warning' }, w));
    const table = h(
      'table',
      { class: 'compare', id: 'compare-table' },
      h('thead', {}, h('tr', {}, h('th', {}, '#'), h('th', {}, `A ${clip(doc.a.name, 60)}`), h('th', {}, ''), h('th', {}, `B ${clip(doc.b.name, 60)}`), h('th', {}, 'differences'))),
      h(
        'tbody',
        {},
        ...doc.entries.map((e, i) =>
          h(
            'tr',
            { class: `op-${e.op}${d && d.entry === i ? ' divergence' : ''}`, id: d && d.entry === i ? 'divergence' : undefined, data: { op: e.op, index: String(i) } },
            h('td', { class: 'num' }, String(i + 1)),
            stepCell(e.a, a),
            h('td', { class: 'op' }, OPS[e.op]),
            stepCell(e.b, b),
            h('td', { class: 'changes' }, (e.changes ?? []).slice(0, 3).map(changeText).join('; ') + (e.changes_omitted ? ` (+${e.changes_omitted})` : '')),
          ),
        ),
      ),
    );
    out.append(table);
    document.getElementById('divergence')?.scrollIntoView({ block: 'center' });
    document.body.dataset.ready = 'compare';
  })();
  return () => ac.abort();
}
