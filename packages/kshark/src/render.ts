import { Chalk, type ChalkInstance } from 'chalk';
import { offloadStatus, sanitizeForTerminal } from '@agenttrace/common';
import type { AgentEvent } from '@agenttrace/contract';
import type { SessionReadResult } from '@agenttrace/sessions';
import type { ResolvedReplayOptions } from './options.js';
import type { SessionStats } from './summary.js';
import type { TimelineRow } from './timeline.js';

export function makeChalk(color: boolean): ChalkInstance {
  return new Chalk({ level: color ? 1 : 0 });
}

/** One line of untrusted text, neutralized. */
export const safe = (text: unknown): string => sanitizeForTerminal(String(text), { singleLine: true });

/** True when an event passes --type, --agent and --grep. */
export function matchesFilters(e: AgentEvent, o: Pick<ResolvedReplayOptions, 'types' | 'agents' | 'grep'>): boolean {
  if (o.types && !o.types.includes(e.event_type)) return false;
  if (o.agents && !o.agents.includes(e.agent_id)) return false;
  if (o.grep && !o.grep.test(JSON.stringify(e))) return false;
  return true;
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '?';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d`;
}

/** Time since the session's first event, fixed width for up to an hour. */
export function formatOffset(ms: number): string {
  const sign = ms < 0 ? '-' : '+';
  const a = Math.abs(ms);
  const m = Math.floor(a / 60_000);
  const s = (a % 60_000) / 1000;
  return m > 0 ? `${sign}${m}:${s.toFixed(3).padStart(6, '0')}` : `${sign}${s.toFixed(3)}s`;
}

/** A value as one sanitized line, cut at `max` characters. */
export function oneLine(value: unknown, max: number): string {
  let text: string;
  if (typeof value === 'string') text = value;
  else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = String(value);
    }
  }
  const clean = safe(text);
  return clean.length > max ? `${clean.slice(0, max)}… (${clean.length} chars, --full shows all)` : clean;
}

/** A value in full: strings as they are, anything else as indented JSON; control characters neutralized. */
export function fullText(value: unknown): string {
  const text = typeof value === 'string' ? value : (JSON.stringify(value, null, 2) ?? String(value));
  return sanitizeForTerminal(text);
}

function stepName(e: AgentEvent): string | undefined {
  const p = e.payload ?? {};
  const v =
    e.event_type === 'tool_call'
      ? p.tool
      : e.event_type === 'llm_call'
        ? p.model
        : e.event_type === 'decision'
          ? p.action
          : e.event_type === 'delegation'
            ? p.subagent_id !== undefined
              ? `→ ${String(p.subagent_id)}`
              : undefined
            : e.event_type === 'custom'
              ? p.name
              : e.event_type === 'error'
                ? p.error?.name
                : undefined;
  return v === undefined || v === null ? undefined : String(v);
}

function typeColor(c: ChalkInstance, e: AgentEvent): (s: string) => string {
  if (e.status === 'error' || e.event_type === 'error') return c.red;
  switch (e.event_type) {
    case 'tool_call':
      return c.cyan;
    case 'llm_call':
      return c.magenta;
    case 'decision':
      return c.yellow;
    case 'delegation':
      return c.blue;
    default:
      return c.gray;
  }
}

/** The tree guide in front of an event nested under a delegation. */
export function treeGuide(row: Pick<TimelineRow, 'depth' | 'lastChild'>): string {
  if (row.depth === 0) return '';
  return `${'│ '.repeat(row.depth - 1)}${row.lastChild ? '└─' : '├─'} `;
}

/** The one-line head of a step: offset, seq, agent, tree guide, type, name, status, latency. */
export function headline(row: TimelineRow, c: ChalkInstance): string {
  const e = row.event;
  const p = e.payload ?? {};
  const parts = [
    c.dim(formatOffset(row.offsetMs).padStart(10)),
    c.dim(`#${e.seq}`.padStart(5)),
    c.bold(safe(e.agent_id)),
    `${c.dim(treeGuide(row))}${typeColor(c, e)(e.event_type)}`,
  ];
  const name = stepName(e);
  if (name) parts.push(safe(name));
  if (e.status === 'error') parts.push(c.red.bold('ERROR'));
  if (typeof p.latency_ms === 'number') parts.push(c.dim(formatDuration(p.latency_ms)));
  if (e.event_type === 'llm_call' && typeof p.cost_usd === 'number') parts.push(c.dim(`$${p.cost_usd.toFixed(4)}`));
  return parts.join('  ');
}

/** Visible columns of a line holding only our own color codes. */
export const visibleLength = (line: string): number => line.replace(/\u001b\[[0-9;]*m/g, '').length;

/**
 * A headline that fits `width` columns with its status marker: on a narrow terminal (or always
 * when `compact`) the seq, latency and cost go first, then the name is cut, never the ERROR marker.
 */
export function headlineFit(row: TimelineRow, c: ChalkInstance, width: number, compact = false): string {
  if (!compact) {
    const full = headline(row, c);
    if (width <= 0 || visibleLength(full) <= width) return full;
  }
  const e = row.event;
  const core = [c.dim(formatOffset(row.offsetMs).padStart(10)), c.bold(safe(e.agent_id)), `${c.dim(treeGuide(row))}${typeColor(c, e)(e.event_type)}`];
  const name = stepName(e);
  if (name) core.push(safe(name));
  return fitWithTail(core.join('  '), e.status === 'error' ? `  ${c.red.bold('ERROR')}` : '', width);
}

/** `head` cut so that `tail` (a status marker) still fits on the line. */
export function fitWithTail(head: string, tail: string, width: number): string {
  const room = width - visibleLength(tail);
  if (room < 8) return fit(`${head}${tail}`, width);
  return `${fit(head, room)}${tail}`;
}

/**
 * Wraps a line to `width` columns: long expanded text continues on the next lines (indented like
 * the line it belongs to) instead of being cut, broken after a space when there is one in the
 * second half of the line. Our own color codes are zero-width; the ones in effect at a break are
 * closed and opened again on the next line.
 */
export function wrapLine(line: string, width: number): string[] {
  if (width <= 0 || visibleLength(line) <= width) return [line];
  const indent = /^ */.exec(line.replace(/\u001b\[[0-9;]*m/g, ''))![0].slice(0, Math.max(0, Math.floor(width / 2)));
  // Tokens: a color code (zero width) or one character.
  const tokens: string[] = [];
  for (let i = 0; i < line.length; ) {
    const m = /^\u001b\[[0-9;]*m/.exec(line.slice(i, i + 16));
    const t = m ? m[0] : String.fromCodePoint(line.codePointAt(i)!);
    tokens.push(t);
    i += t.length;
  }
  const isCode = (t: string): boolean => t.startsWith('\u001b[');
  const out: string[] = [];
  let codes = '';
  let start = 0;
  while (start < tokens.length) {
    const room = width - (out.length === 0 ? 0 : indent.length);
    let cols = 0;
    let end = start;
    let lastSpace = -1;
    while (end < tokens.length && (cols < room || isCode(tokens[end]!))) {
      if (!isCode(tokens[end]!)) {
        cols++;
        if (tokens[end] === ' ') lastSpace = end;
      }
      end++;
    }
    if (end < tokens.length && lastSpace > start + Math.floor(room / 2)) end = lastSpace + 1;
    const open = codes;
    for (let k = start; k < end; k++) if (isCode(tokens[k]!)) codes = tokens[k] === '\u001b[0m' ? '' : codes + tokens[k]!;
    const text = tokens.slice(start, end).join('');
    out.push(`${out.length === 0 ? '' : indent}${open}${text}${codes && end < tokens.length ? '\u001b[0m' : ''}`);
    start = end;
  }
  return out;
}

function field(label: string, value: unknown, o: Pick<ResolvedReplayOptions, 'full' | 'truncateAt'>, c: ChalkInstance, indent: string): string[] {
  if (value === undefined) return [];
  if (!o.full) return [`${indent}${c.dim(`${label}:`)} ${oneLine(value, o.truncateAt)}`];
  const text = fullText(value);
  if (!text.includes('\n')) return [`${indent}${c.dim(`${label}:`)} ${text}`];
  return [`${indent}${c.dim(`${label}:`)}`, ...text.split('\n').map((l) => `${indent}  ${l}`)];
}

/** The lines under a headline: inputs, outputs, model and tokens, reasoning, confidence, errors. */
export function details(row: TimelineRow, o: Pick<ResolvedReplayOptions, 'full' | 'truncateAt'>, c: ChalkInstance): string[] {
  const e = row.event;
  const p = e.payload ?? {};
  const ctx = e.context ?? {};
  const indent = ' '.repeat(18) + '  '.repeat(row.depth);
  const out: string[] = [];
  if (e.event_type === 'llm_call') {
    const bits: string[] = [];
    if (p.input_tokens !== undefined) bits.push(`in ${safe(p.input_tokens)} tok`);
    if (p.output_tokens !== undefined) bits.push(`out ${safe(p.output_tokens)} tok`);
    if (typeof p.cost_usd === 'number') bits.push(`$${p.cost_usd.toFixed(4)}`);
    if (bits.length > 0) out.push(`${indent}${c.dim('usage:')} ${bits.join(' · ')}`);
  }
  if (e.event_type === 'decision' && Array.isArray(p.options)) out.push(...field('options', p.options, o, c, indent));
  if (e.event_type === 'delegation') out.push(...field('task', p.task, o, c, indent));
  if (e.event_type === 'custom' || e.event_type === 'session_start' || e.event_type === 'session_end') {
    const { name: _n, ...rest } = p;
    if (Object.keys(rest).length > 0) out.push(...field('data', rest, o, c, indent));
  }
  out.push(...field('input', p.input, o, c, indent));
  out.push(...field('output', p.output, o, c, indent));
  if (p.error) {
    const err = p.error;
    const msg = `${err.name ? `${safe(err.name)}: ` : ''}${safe(err.message ?? '')}${err.code !== undefined ? ` (code ${safe(err.code)})` : ''}`;
    out.push(`${indent}${c.red('error:')} ${c.red(msg)}`);
    if (o.full && typeof err.stack === 'string') out.push(...fullText(err.stack).split('\n').map((l) => `${indent}  ${c.dim(l)}`));
  }
  if (ctx.reasoning !== undefined) out.push(...field('reasoning', ctx.reasoning, o, c, indent).map((l) => c.italic(l)));
  const why: string[] = [];
  if (typeof ctx.model === 'string' && e.event_type !== 'llm_call') why.push(`model ${safe(ctx.model)}`);
  if (typeof ctx.confidence === 'number') why.push(`confidence ${ctx.confidence}`);
  if (why.length > 0) out.push(`${indent}${c.dim(why.join(' · '))}`);
  if (e.offload?.fields.length) out.push(...offloadLines(e, indent, c));
  if (row.missingParent) out.push(`${indent}${c.dim(`(parent ${safe(row.missingParent)} is not in this replay)`)}`);
  return out;
}

/**
 * What happened to each offloaded field, as the event shows it: "restored" only for fields the
 * reader actually fetched back from S3 (#14). A field whose upload failed was never stored.
 */
function offloadLines(e: AgentEvent, indent: string, c: ChalkInstance): string[] {
  const s = offloadStatus(e);
  const list = (paths: string[]) => paths.map(safe).join(', ');
  const out: string[] = [];
  if (s.restored.length > 0) out.push(`${indent}${c.dim(`(offloaded to S3 and restored: ${list(s.restored)})`)}`);
  if (s.notRestored.length > 0) out.push(`${indent}${c.yellow(`(offloaded to S3, NOT restored — shown as its reference: ${list(s.notRestored)})`)}`);
  const failed = e.offload?.failed === undefined ? '' : `: ${safe(e.offload.failed)}`;
  if (s.keptInline.length > 0) out.push(`${indent}${c.yellow(`(not stored in S3, kept inline — upload failed${failed}: ${list(s.keptInline)})`)}`);
  if (s.truncated.length > 0) out.push(`${indent}${c.red(`(not stored anywhere, only a preview was kept — upload failed${failed}: ${list(s.truncated)})`)}`);
  return out;
}

/** Cuts a line to `width` visible columns (0 = no cut); ANSI codes of our own do not count. */
export function fit(line: string, width: number): string {
  if (width <= 0) return line;
   
  const visible = line.replace(/\u001b\[[0-9;]*m/g, '');
  if (visible.length <= width) return line;
  // Our own color codes are the only escapes left at this point, so dropping them is safe.
  return `${visible.slice(0, width - 1)}…`;
}

export function renderRow(row: TimelineRow, o: ResolvedReplayOptions, c: ChalkInstance): string[] {
  const lines = [headline(row, c), ...details(row, o, c)];
  return o.full ? lines : lines.map((l) => fit(l, o.width));
}

export function renderSummary(result: SessionReadResult, stats: SessionStats, shown: number, c: ChalkInstance): string[] {
  const out: string[] = [];
  out.push('');
  out.push(c.bold(`Session ${safe(result.sessionId)}`) + c.dim(`  (source: ${result.source}${result.partition !== undefined ? `, partition ${result.partition}` : ''})`));
  const range = stats.first_ts ? `${safe(stats.first_ts)} → ${safe(stats.last_ts)}` : '';
  out.push(`  status ${stats.status === 'error' ? c.red(stats.status) : stats.status}, duration ${formatDuration(stats.duration_ms)}  ${c.dim(range)}`);
  const types = Object.entries(stats.by_type)
    .sort((a, b) => b[1] - a[1])
    .map(([t, n]) => `${safe(t)} ${n}`)
    .join(', ');
  out.push(`  ${stats.event_count} events${shown !== stats.event_count ? ` (${shown} shown after filters)` : ''}: ${types}`);
  if (stats.agents.length > 0) out.push(`  agents: ${stats.agents.map(safe).join(', ')}`);
  const tools = Object.entries(stats.tool_calls).sort((a, b) => b[1] - a[1]);
  if (tools.length > 0) {
    const head = tools.slice(0, 8).map(([t, n]) => `${safe(t)} ${n}`);
    out.push(`  tool calls: ${head.join(', ')}${tools.length > 8 ? `, … ${tools.length - 8} more tools` : ''}`);
  }
  out.push(`  tokens: in ${stats.input_tokens.toLocaleString('en-US')}, out ${stats.output_tokens.toLocaleString('en-US')}; cost $${stats.cost_usd.toFixed(4)}`);
  out.push(`  errors: ${stats.error_count > 0 ? c.red(String(stats.error_count)) : '0'}`);
  for (const l of stats.retry_loops) {
    out.push(
      c.yellow(
        `  retry loop: ${safe(l.tool)} called ${l.calls} times in ${formatDuration(l.span_ms)} (${l.failed} failed), median gap ${formatDuration(l.median_gap_ms)}: no backoff (from seq #${l.first_seq})`,
      ),
    );
  }
  for (const w of result.warnings) out.push(c.yellow(`  warning: ${safe(w)}`));
  return out;
}
