import { loggerFromHook, type AgentTraceSettings } from '@agenttrace/common';
import type { AgentEvent } from '@agenttrace/contract';
import { SessionReader, type SessionReaderOptions, type SessionReadResult, type SessionSourceName } from '@agenttrace/sessions';
import { replayJson, safeJson } from './json-output.js';
import { resolveReplayOptions, type ReplayOptions, type ResolvedReplayOptions } from './options.js';
import { makeChalk, matchesFilters, renderRow, renderSummary, safe } from './render.js';
import { sessionStats } from './summary.js';
import { buildTimeline, type TimelineRow } from './timeline.js';
import type { ChalkInstance } from 'chalk';
import type { ReplayView } from './top.js';

export type ReplayOutput = 'pretty' | 'json' | 'jsonl' | 'interactive';

export interface Output {
  write(text: string): unknown;
}

export interface ReplayRequest {
  sessionId: string;
  settings: AgentTraceSettings;
  source?: 'auto' | SessionSourceName;
  from?: number;
  to?: number;
  output: ReplayOutput;
  follow?: boolean;
  replay?: ReplayOptions;
  readerOptions?: SessionReaderOptions;
  stdout: Output;
  stderr: Output;
  /** Ends --follow (Ctrl-C). */
  signal?: AbortSignal;
}

function rowsFor(events: AgentEvent[], o: ResolvedReplayOptions): TimelineRow[] {
  // The tree is built from every event so filtered views keep their nesting.
  return buildTimeline(events).filter((r) => matchesFilters(r.event, o));
}

/** `kshark replay`: read the session, print it in the chosen form, optionally keep following it. */
export async function runReplay(req: ReplayRequest): Promise<void> {
  const o = resolveReplayOptions(req.replay);
  const c = makeChalk(o.color);
  const reader = new SessionReader(req.settings, req.readerOptions);
  try {
    const readOpts: Parameters<SessionReader['read']>[1] = { source: req.source ?? 'auto' };
    if (req.from !== undefined) readOpts.from = req.from;
    if (req.to !== undefined) readOpts.to = req.to;
    const result = await reader.read(req.sessionId, readOpts);
    const all = result.events;
    const inWindow = (e: AgentEvent) => {
      const t = Date.parse(e.timestamp);
      return (req.from === undefined || t >= req.from) && (req.to === undefined || t <= req.to);
    };
    // Follow ends on Ctrl-C (req.signal) or when the interactive view quits.
    const followStop = new AbortController();
    if (req.signal?.aborted) followStop.abort();
    req.signal?.addEventListener('abort', () => followStop.abort(), { once: true });
    const follow = async (onNew: (events: AgentEvent[]) => void): Promise<void> => {
      if (!req.follow || followStop.signal.aborted) return;
      await reader.follow(req.sessionId, (evs) => onNew(evs.filter(inWindow)), followStop.signal, {
        cursor: result.cursor,
        // Only the message: the session id is the one being replayed.
        logger: loggerFromHook((_level, w) => req.stderr.write(`${c.yellow(`warning: ${safe(w)}`)}\n`), { level: 'warn' }),
      });
    };

    if (req.output === 'json') {
      const stats = sessionStats(all);
      req.stdout.write(`${safeJson(replayJson(result, stats, all.filter((e) => matchesFilters(e, o))), 2)}\n`);
      return;
    }
    if (req.output === 'jsonl') {
      for (const e of all) if (matchesFilters(e, o)) req.stdout.write(`${safeJson(e)}\n`);
      for (const w of result.warnings) req.stderr.write(`warning: ${safe(w)}\n`);
      await follow((evs) => {
        for (const e of evs) if (matchesFilters(e, o)) req.stdout.write(`${safeJson(e)}\n`);
      });
      return;
    }
    if (req.output === 'interactive') {
      await runInteractive(req, result, o, follow, followStop);
      return;
    }

    const rows = rowsFor(all, o);
    // Large sessions: a few big writes instead of one per step.
    let chunk: string[] = [];
    let size = 0;
    for (const r of rows) {
      const text = `${renderRow(r, o, c).join('\n')}\n`;
      chunk.push(text);
      size += text.length;
      if (size > 256 * 1024) {
        req.stdout.write(chunk.join(''));
        chunk = [];
        size = 0;
      }
    }
    if (chunk.length > 0) req.stdout.write(chunk.join(''));
    if (req.follow) {
      req.stderr.write(c.dim(`following ${safe(req.sessionId)} (Ctrl-C to stop)…\n`));
      const t0 = all.reduce((m, e) => Math.min(m, Date.parse(e.timestamp)), Number.POSITIVE_INFINITY);
      await follow((evs) => {
        all.push(...evs);
        const base = Number.isFinite(t0) ? t0 : Date.parse(all[0]!.timestamp);
        // A new event's parent may already be on screen; its depth comes from the events seen so far.
        const tree = new Map(buildTimeline(all).map((r) => [r.event.event_id, r]));
        for (const e of evs) {
          if (!matchesFilters(e, o)) continue;
          const r = tree.get(e.event_id);
          const row: TimelineRow = r ? { ...r, offsetMs: Date.parse(e.timestamp) - base } : { event: e, index: all.length - 1, depth: 0, offsetMs: Date.parse(e.timestamp) - base, lastChild: true };
          req.stdout.write(`${renderRow(row, o, c).join('\n')}\n`);
        }
      });
    }
    const shown = all.filter((e) => matchesFilters(e, o)).length;
    req.stdout.write(`${renderSummary(result, sessionStats(all), shown, c).join('\n')}\n`);
  } finally {
    await reader.close();
  }
}

/** A session read for the replay view `kshark top` opens (every event, no filters). */
export async function readReplayView(reader: SessionReader, sessionId: string, c: ChalkInstance): Promise<ReplayView> {
  const result = await reader.read(sessionId, { source: 'auto' });
  return {
    title: `kshark replay ${safe(sessionId)} (${result.source})`,
    rows: buildTimeline(result.events),
    summary: renderSummary(result, sessionStats(result.events), result.events.length, c),
  };
}

async function runInteractive(
  req: ReplayRequest,
  result: SessionReadResult,
  o: ResolvedReplayOptions,
  follow: (onNew: (events: AgentEvent[]) => void) => Promise<void>,
  stop: AbortController,
): Promise<void> {
  // ink and React take a third of a second to load; only the interactive view pays for them.
  const [{ createElement }, { render }, { ReplayApp }] = await Promise.all([import('react'), import('ink'), import('./interactive.js')]);
  const c = makeChalk(o.color);
  const all = result.events.slice();
  const listeners = new Set<(rows: TimelineRow[]) => void>();
  let failure: unknown;
  const app = render(
    createElement(ReplayApp, {
      title: `kshark replay ${safe(req.sessionId)} (${result.source})`,
      rows: rowsFor(all, o),
      summary: renderSummary(result, sessionStats(all), all.filter((e) => matchesFilters(e, o)).length, c),
      chalk: c,
      subscribe: (onRows) => {
        listeners.add(onRows);
        return () => listeners.delete(onRows);
      },
      onExit: () => stop.abort(),
    }),
    { exitOnCtrlC: false },
  );
  const following = follow((evs) => {
    all.push(...evs);
    const rows = rowsFor(all, o);
    for (const l of listeners) l(rows);
  }).catch((err: unknown) => {
    // The view stays usable with what was read; the failure is reported after it closes.
    failure = err;
  });
  stop.signal.addEventListener('abort', () => app.unmount(), { once: true });
  await app.waitUntilExit();
  stop.abort();
  await following;
  if (failure) throw failure;
}
