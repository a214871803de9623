/**
 * Text output: the first divergence, the full comparison (unified or side by side, matching runs
 * collapsed) and the summary. Everything taken from an event goes through sanitizeForTerminal.
 */
import { Chalk, type ChalkInstance } from 'chalk';
import { sanitizeForTerminal } from '@agenttrace/common';
import type { Comparison, DiffEntry, SideTotals } from './compare.js';
import type { FieldChange } from './field-diff.js';
import type { Step } from './steps.js';
import { isStructuralPath, storyText, type StepRange, type StoryItem } from './story.js';

export type View = 'unified' | 'side-by-side';

export interface RenderOptions {
  chalk: ChalkInstance;
  /** Names of the two sides as shown in headers (`sess_a (kafka)`, `expected steps.json`). */
  labelA: string;
  labelB: string;
  view: View;
  /** Line width for the side-by-side view. */
  width: number;
  /** Characters of a value shown on one line (Infinity with --full). */
  valueWidth: number;
  /** --full: long strings (values, reasoning) whole instead of cut. */
  full?: boolean;
}

export function makeChalk(color: boolean): ChalkInstance {
  return new Chalk({ level: color ? 1 : 0 });
}

/** One line of untrusted text, neutralized. */
export const safe = (text: unknown): string => sanitizeForTerminal(String(text), { singleLine: true });

/** A JSON value on one sanitized line, cut at `max` characters. */
export function formatValue(value: unknown, max: number): string {
  if (value === undefined) return '(absent)';
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  const clean = safe(text);
  return clean.length > max ? `${clean.slice(0, max)}… (${clean.length} chars, --full prints all)` : clean;
}

export function formatMs(ms: number): string {
  const a = Math.abs(ms);
  if (a < 1000) return `${Math.round(ms)}ms`;
  return `${(ms / 1000).toFixed(a < 10_000 ? 2 : 1)}s`;
}

const signed = (n: number, text: string): string => (n > 0 ? `+${text}` : n < 0 ? `-${text.replace(/^-/, '')}` : text);
export const formatMsDelta = (ms: number): string => signed(ms, formatMs(Math.abs(ms)));
export const formatUsd = (usd: number): string => `$${Math.abs(usd) < 0.01 && usd !== 0 ? usd.toFixed(6).replace(/0+$/, '') : usd.toFixed(4)}`;
export const formatUsdDelta = (usd: number): string => signed(usd, formatUsd(Math.abs(usd)));

/** `tool_call stripe.create_invoice [invoice-agent] ERROR`, indented under delegations. */
export function describeStep(s: Step, c: ChalkInstance): string {
  const indent = s.depth > 0 ? `${'  '.repeat(Math.min(s.depth, 8) - 1)}↳ ` : '';
  const label = s.label ? ` ${safe(s.label)}` : '';
  const agent = s.agentId !== undefined ? c.dim(` [${safe(s.agentId)}]`) : '';
  const status = s.status === 'error' ? ` ${c.red('ERROR')}` : '';
  return `${indent}${s.eventType}${label}${agent}${status}`;
}

function deltas(e: DiffEntry, c: ChalkInstance): string {
  const parts: string[] = [];
  // Sub-millisecond jitter would print as a meaningless ±0ms.
  if (e.latencyDeltaMs !== undefined && Math.abs(e.latencyDeltaMs) >= 0.5) parts.push(`Δ latency ${formatMsDelta(e.latencyDeltaMs)}`);
  if (e.costDeltaUsd !== undefined && Math.abs(e.costDeltaUsd) > 1e-12) parts.push(`Δ cost ${formatUsdDelta(e.costDeltaUsd)}`);
  return parts.length > 0 ? c.dim(`  (${parts.join(', ')})`) : '';
}

export function formatChange(ch: FieldChange, valueWidth: number): string {
  if (ch.kind === 'added') return `${safe(ch.path)}: (absent) → ${formatValue(ch.b, valueWidth)}`;
  if (ch.kind === 'removed') return `${safe(ch.path)}: ${formatValue(ch.a, valueWidth)} → (absent)`;
  return `${safe(ch.path)}: ${formatValue(ch.a, valueWidth)} → ${formatValue(ch.b, valueWidth)}`;
}

function changeLines(e: { changes: FieldChange[]; changesOmitted: number }, indent: string, o: RenderOptions): string[] {
  const out = e.changes.map((ch) => `${indent}${o.chalk.yellow(formatChange(ch, o.valueWidth))}`);
  if (e.changesOmitted > 0) out.push(`${indent}${o.chalk.dim(`… and ${e.changesOmitted} more changed fields`)}`);
  return out;
}

const ref = (side: 'A' | 'B', s: Step | undefined): string => (s ? `${side}#${s.index + 1}` : '');

/** Which entries are shown: every change plus `context` matching entries around each. */
function visibleEntries(entries: readonly DiffEntry[], context: number): boolean[] {
  const show = new Array<boolean>(entries.length).fill(false);
  entries.forEach((e, i) => {
    if (e.op === 'same') return;
    for (let k = Math.max(0, i - context); k <= Math.min(entries.length - 1, i + context); k++) show[k] = true;
  });
  return show;
}

const MARK: Record<DiffEntry['op'], string> = { same: '=', changed: '~', removed: '-', added: '+' };

function paint(op: DiffEntry['op'], c: ChalkInstance): (t: string) => string {
  if (op === 'removed') return c.red;
  if (op === 'added') return c.green;
  if (op === 'changed') return c.yellow;
  return c.dim;
}

/** One-sided runs of this many identical steps or more are folded to their first and last step. */
export const FOLD_RUN = 5;

/**
 * Which entries are folded away: the inside of each run of at least FOLD_RUN one-sided entries of
 * one kind and status (a retry loop is hundreds of identical lines). Maps the first folded entry
 * of a run to the number folded.
 */
function foldedRuns(entries: readonly DiffEntry[]): { hide: boolean[]; count: Map<number, number> } {
  const hide = new Array<boolean>(entries.length).fill(false);
  const count = new Map<number, number>();
  let i = 0;
  while (i < entries.length) {
    const e = entries[i]!;
    if (e.op !== 'removed' && e.op !== 'added') {
      i++;
      continue;
    }
    const s = (e.a ?? e.b)!;
    let j = i + 1;
    while (j < entries.length && entries[j]!.op === e.op && (entries[j]!.a ?? entries[j]!.b)!.kind === s.kind && (entries[j]!.a ?? entries[j]!.b)!.status === s.status) j++;
    if (j - i >= FOLD_RUN) {
      for (let k = i + 1; k < j - 1; k++) hide[k] = true;
      count.set(i + 1, j - i - 2);
    }
    i = j;
  }
  return { hide, count };
}

function foldLine(entries: readonly DiffEntry[], first: number, n: number, c: ChalkInstance): string {
  const e = entries[first]!;
  const side = e.op === 'removed' ? 'A' : 'B';
  const s = (e.a ?? e.b)!;
  const last = (entries[first + n - 1]!.a ?? entries[first + n - 1]!.b)!;
  return paint(e.op, c)(`${MARK[e.op]}             … ${n} more ${describeStep(s, PLAIN_CHALK)} (${side}#${s.index + 1}–${side}#${last.index + 1}) …`);
}

const PLAIN_CHALK = new Chalk({ level: 0 });

function unifiedLines(cmp: Comparison, o: RenderOptions): string[] {
  const c = o.chalk;
  const out: string[] = [];
  const show = visibleEntries(cmp.entries, cmp.options.context);
  const fold = foldedRuns(cmp.entries);
  let hidden = 0;
  const flush = (): void => {
    if (hidden > 0) out.push(c.dim(`    … ${hidden} matching step${hidden === 1 ? '' : 's'} …`));
    hidden = 0;
  };
  cmp.entries.forEach((e, i) => {
    if (!show[i]) {
      hidden++;
      return;
    }
    if (fold.hide[i]) {
      const n = fold.count.get(i);
      if (n !== undefined) out.push(foldLine(cmp.entries, i, n, c));
      return;
    }
    flush();
    const p = paint(e.op, c);
    const refs = `${ref('A', e.a).padEnd(7)}${ref('B', e.b).padEnd(7)}`;
    const step = e.b ?? e.a!;
    out.push(`${p(`${MARK[e.op]} ${refs}`)}${describeStep(e.op === 'removed' ? e.a! : step, c)}${deltas(e, c)}`);
    if (e.op === 'changed') out.push(...changeLines(e, '        ', o));
  });
  flush();
  return out;
}

/** Pads text that may contain ANSI codes to a visible width, cutting it when longer. */
function fit(text: string, width: number): string {
   
  const plain = text.replace(/\u001b\[[0-9;]*m/g, '');
  if (plain.length <= width) return text + ' '.repeat(width - plain.length);
  return `${plain.slice(0, Math.max(0, width - 1))}…`;
}

function sideBySideLines(cmp: Comparison, o: RenderOptions): string[] {
  const c = o.chalk;
  const col = Math.max(30, Math.floor((o.width - 3) / 2));
  const out: string[] = [`${fit(c.bold(`A ${safe(o.labelA)}`), col)} │ ${c.bold(`B ${safe(o.labelB)}`)}`];
  const show = visibleEntries(cmp.entries, cmp.options.context);
  const fold = foldedRuns(cmp.entries);
  let hidden = 0;
  const flush = (): void => {
    if (hidden > 0) out.push(c.dim(`${fit(`  … ${hidden} matching step${hidden === 1 ? '' : 's'} …`, col)} │`));
    hidden = 0;
  };
  cmp.entries.forEach((e, i) => {
    if (!show[i]) {
      hidden++;
      return;
    }
    if (fold.hide[i]) {
      const n = fold.count.get(i);
      if (n !== undefined) out.push(foldLine(cmp.entries, i, n, c));
      return;
    }
    flush();
    const p = paint(e.op, c);
    const left = e.a ? `${ref('A', e.a).padEnd(7)}${describeStep(e.a, c)}` : '';
    const right = e.b ? `${ref('B', e.b).padEnd(7)}${describeStep(e.b, c)}${deltas(e, c)}` : '';
    out.push(`${fit(left, col)} ${p(MARK[e.op])} ${right}`);
    if (e.op === 'changed') out.push(...changeLines(e, '        ', o));
  });
  flush();
  return out;
}

/** A reasoning string without its JSON quotes, cut (with the note) only when longer than `max`. */
function reasoningText(text: string, max: number): string {
  const clean = safe(JSON.stringify(text)).slice(1, -1);
  return clean.length > max ? `${clean.slice(0, max)}… (${clean.length} chars, --full prints all)` : clean;
}

const rangeRef = (side: 'A' | 'B', r: StepRange | undefined): string => (r ? (r.from === r.to ? `${side}#${r.from + 1}` : `${side}#${r.from + 1}–${side}#${r.to + 1}`) : '');

function storyRefs(item: StoryItem): string {
  return [rangeRef('A', item.a), rangeRef('B', item.b)].filter(Boolean).join(' / ');
}

/** Story values in the text view: strings bare, anything else as JSON, all sanitized and cut. */
function storyValue(o: RenderOptions): (v: unknown) => string {
  const max = o.full ? Number.POSITIVE_INFINITY : Math.min(o.valueWidth, 80);
  return (v) => {
    if (typeof v !== 'string') return formatValue(v, max);
    const clean = safe(v);
    return clean.length > max ? `${clean.slice(0, max)}… (${clean.length} chars, --full prints all)` : clean;
  };
}

/** The line of one story item. */
export function storyLine(cmp: Comparison, item: StoryItem, o: RenderOptions): string {
  const e = cmp.entries[item.entry]!;
  return storyText(item, e.a, e.b, storyValue(o));
}

/** Story items listed in a report; the rest are counted (all of them are in --json). */
const STORY_SHOWN = 20;

/** "What changed": every structural difference in alignment order, numbered. */
export function storyLines(cmp: Comparison, o: RenderOptions): string[] {
  const c = o.chalk;
  if (cmp.identical) return [];
  if (cmp.story.length === 0) return [c.bold('What changed: no structural difference') + c.dim(` (the same steps, decisions and outcome; ${cmp.summary.dataOnly} step${cmp.summary.dataOnly === 1 ? '' : 's'} differ in per-run data only)`)];
  const out = [c.bold(`What changed (${cmp.story.length} structural difference${cmp.story.length === 1 ? '' : 's'}, in order):`)];
  cmp.story.slice(0, STORY_SHOWN).forEach((item, n) => {
    out.push(`  ${String(n + 1).padStart(2)}. ${c.dim(storyRefs(item).padEnd(18))} ${paintStory(item, c)(storyLine(cmp, item, o))}`);
  });
  if (cmp.story.length > STORY_SHOWN) out.push(c.dim(`  … ${cmp.story.length - STORY_SHOWN} more (the full view or --json lists all)`));
  if (cmp.summary.dataOnly > 0) out.push(c.dim(`  and ${cmp.summary.dataOnly} step${cmp.summary.dataOnly === 1 ? '' : 's'} differing only in per-run data (ids, amounts, text)`));
  return out;
}

function paintStory(item: StoryItem, c: ChalkInstance): (t: string) => string {
  if (item.kind === 'loop' || item.kind === 'only_in_a') return c.red;
  if (item.kind === 'only_in_b') return c.green;
  return c.yellow;
}

/** Data differences listed after the divergence: steps shown, the rest counted. */
const DATA_SHOWN = 10;

/** Per-run data: the changed fields that are not structural, step by step. */
export function dataLines(cmp: Comparison, o: RenderOptions): string[] {
  const c = o.chalk;
  const rows = cmp.entries.filter((e) => e.op === 'changed' && e.changes.some((ch) => !isStructuralPath(e.a!.eventType, ch.path)));
  if (rows.length === 0) return [];
  const out = [c.bold(`Data differences (per-run values, not structural) in ${rows.length} step${rows.length === 1 ? '' : 's'}:`)];
  for (const e of rows.slice(0, DATA_SHOWN)) {
    out.push(`  ${`${ref('A', e.a)} / ${ref('B', e.b)}`.padEnd(16)}${describeStep(e.b!, c)}`);
    const data = e.changes.filter((ch) => !isStructuralPath(e.a!.eventType, ch.path));
    out.push(...changeLines({ changes: data, changesOmitted: e.changesOmitted }, '      ', o));
  }
  if (rows.length > DATA_SHOWN) out.push(c.dim(`  … ${rows.length - DATA_SHOWN} more steps with data differences (the full view or --json lists all)`));
  return out;
}

function sideDetails(side: 'A' | 'B', s: Step | undefined, o: RenderOptions): string[] {
  const c = o.chalk;
  if (!s) return [`  ${side}: ${c.dim('(no more steps)')}`];
  const out = [`  ${c.bold(`${side}#${s.index + 1}`)} ${describeStep(s, c)}`];
  const facts: string[] = [];
  if (s.model !== undefined) facts.push(`model ${safe(s.model)}`);
  if (s.confidence !== undefined) facts.push(`confidence ${s.confidence}`);
  if (s.latencyMs !== undefined) facts.push(`latency ${formatMs(s.latencyMs)}`);
  if (s.costUsd !== undefined) facts.push(`cost ${formatUsd(s.costUsd)}`);
  if (facts.length > 0) out.push(`      ${facts.join(' · ')}`);
  const max = o.full ? Number.POSITIVE_INFINITY : 400;
  if (s.reasoning !== undefined) out.push(`      reasoning: ${typeof s.reasoning === 'string' ? reasoningText(s.reasoning, max) : formatValue(s.reasoning, max)}`);
  // Why a failed step failed is usually the answer the reader is looking for.
  const err = (s.view.payload as { error?: { name?: unknown; message?: unknown } } | undefined)?.error;
  if (err && typeof err === 'object') out.push(c.red(`      error: ${safe(err.name ?? 'Error')}: ${safe(err.message ?? '')}`));
  return out;
}

export function divergenceLines(cmp: Comparison, o: RenderOptions): string[] {
  const c = o.chalk;
  const d = cmp.divergence;
  if (!d) return [c.green('No divergence: every compared step matches.')];
  const at = cmp.entries[d.entry]!;
  const what =
    at.op === 'changed' ? 'the same kind of step with different fields' : at.op === 'removed' ? `a step only in A (${safe(o.labelA)})` : `a step only in B (${safe(o.labelB)})`;
  const out = [c.bold(`First divergence at ${[ref('A', at.a), ref('B', at.b)].filter(Boolean).join(' / ')}: ${what}`)];
  if (d.story) out.push(`  ${paintStory(d.story, c)(storyLine(cmp, d.story, o))}`);
  else out.push(c.dim('  (no structural difference: the sessions differ only in per-run data)'));
  if (d.context.length > 0) {
    const data = d.context.filter((e) => e.op === 'changed').length;
    const n = d.context.length;
    const kind = data > 0 ? `${n} step${n === 1 ? '' : 's'}: ${n - data} matching, ${data} with data differences only` : `${n} matching step${n === 1 ? '' : 's'}`;
    out.push(c.dim(`  before it (${kind}):`));
    for (const e of d.context) out.push(c.dim(`    ${e.op === 'same' ? '=' : '~'} ${ref('A', e.a).padEnd(7)}${ref('B', e.b).padEnd(7)}`) + describeStep(e.a!, c));
  } else if (d.entry === 0) {
    out.push(c.dim('  (the sessions differ from their first compared step)'));
  }
  out.push(...sideDetails('A', d.a, o), ...sideDetails('B', d.b, o));
  if (d.changes.length > 0) {
    out.push('  fields:');
    out.push(...changeLines(d, '    ', o));
  }
  if (d.structural && cmp.story.length > 1) out.push('', ...storyLines(cmp, o));
  const data = dataLines(cmp, o);
  if (d.structural && data.length > 0) out.push('', ...data);
  return out;
}

function totalsLine(name: string, a: number, b: number, fmt: (n: number) => string, delta: (n: number) => string): string {
  return `  ${name.padEnd(8)} A ${fmt(a)}   B ${fmt(b)}   (${delta(b - a)})`;
}

function errorText(t: SideTotals, side: 'A' | 'B', c: ChalkInstance): string {
  if (!t.firstError) return `${side} ${t.errors}`;
  return `${side} ${t.errors} (first: ${side}#${t.firstError.index + 1} ${describeStep(t.firstError, c)})`;
}

export function summaryLines(cmp: Comparison, o: RenderOptions): string[] {
  const c = o.chalk;
  const s = cmp.summary;
  const out = [
    c.bold('Summary'),
    `  steps    A ${s.a.steps}   B ${s.b.steps}   ${s.same} same, ${c.yellow(`${s.changed} changed`)}, ${c.red(`${s.onlyInA} only in A`)}, ${c.green(`${s.onlyInB} only in B`)}`,
  ];
  if (cmp.mode === 'sessions') {
    out.push(totalsLine('latency', s.a.latencyMs, s.b.latencyMs, formatMs, formatMsDelta));
    out.push(totalsLine('cost', s.a.costUsd, s.b.costUsd, formatUsd, formatUsdDelta));
  } else {
    out.push(`  latency  B ${formatMs(s.b.latencyMs)}   cost B ${formatUsd(s.b.costUsd)}`);
  }
  out.push(`  errors   ${errorText(s.a, 'A', c)}   ${errorText(s.b, 'B', c)}`);
  if (s.errorOnlyIn) out.push(c.red(`  error only in ${s.errorOnlyIn.toUpperCase()} (${safe(s.errorOnlyIn === 'a' ? o.labelA : o.labelB)})`));
  if (s.a.outcome !== undefined || s.b.outcome !== undefined) out.push(`  outcome  A ${safe(s.a.outcome ?? '(no session_end)')}   B ${safe(s.b.outcome ?? '(no session_end)')}`);
  if (cmp.alignment === 'anchored') out.push(c.dim(`  (the sessions differ in more than ${cmp.options.maxEditLength} steps; aligned on steps unique to both sides)`));
  out.push(cmp.identical ? c.green('Same: no differences after ignores and filters.') : c.red('Different.'));
  return out;
}

/** The whole text report. */
export function renderComparison(cmp: Comparison, o: RenderOptions, showDivergence: boolean): string {
  const c = o.chalk;
  const lines = [`${c.bold('kdiff')}  A: ${safe(o.labelA)}   B: ${safe(o.labelB)}`];
  const ign = cmp.options.ignore.length > 0 ? ` + ${cmp.options.ignore.map(safe).join(', ')}` : '';
  lines.push(c.dim(`ignoring: ${cmp.options.defaultIgnore ? 'ids, timestamps, seq, latency, cost, tokens, stacks' : 'nothing by default'}${ign}`));
  const filters: string[] = [];
  if (cmp.options.types) filters.push(`types ${cmp.options.types.join(',')}`);
  if (cmp.options.agents) filters.push(`agents ${cmp.options.agents.map(safe).join(',')}`);
  if (filters.length > 0) lines.push(c.dim(`only: ${filters.join('; ')}`));
  lines.push('');
  if (showDivergence) {
    lines.push(...divergenceLines(cmp, o));
  } else if (cmp.identical) {
    lines.push(c.dim(`  all ${cmp.entries.length} compared steps match`));
  } else {
    lines.push(...storyLines(cmp, o), '');
    lines.push(...(o.view === 'side-by-side' ? sideBySideLines(cmp, o) : unifiedLines(cmp, o)));
  }
  lines.push('', ...summaryLines(cmp, o));
  return `${lines.join('\n')}\n`;
}
