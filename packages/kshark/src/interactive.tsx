import { useEffect, useMemo, useRef, useState } from 'react';
import { Box, Text, useApp, useInput, useStdout, type Key } from 'ink';
import type { ChalkInstance } from 'chalk';
import { details, fit, fitWithTail, formatDuration, formatOffset, headlineFit, safe, treeGuide, visibleLength, wrapLine } from './render.js';
import { findLoopRuns, viewItems, type LoopRun, type ViewItem } from './replay-view.js';
import type { TimelineRow } from './timeline.js';

export interface ReplayAppProps {
  title: string;
  rows: TimelineRow[];
  summary: string[];
  chalk: ChalkInstance;
  /** Lines available for the timeline (default: terminal rows minus header and footer). */
  height?: number;
  /** Live updates (--follow): called with the whole new row list. Returns an unsubscribe. */
  subscribe?: (onRows: (rows: TimelineRow[]) => void) => () => void;
  /** Called when the view quits on its own (q, Esc, Ctrl-C); the ink app then exits. */
  onExit?: () => void;
  /**
   * Set when the view is shown inside another one (kshark top): q and Esc call it instead of
   * ending the ink app, so the outer view comes back. Ctrl-C still ends everything.
   */
  onBack?: () => void;
}

// session_end carries the session's outcome; the failing steps are the ones worth jumping to.
const isError = (r: TimelineRow) => r.event.event_type !== 'session_end' && (r.event.status === 'error' || r.event.event_type === 'error');

interface ViewState {
  /** Index into the view's items. */
  cursor: number;
  /** First item on screen, and how many of its lines are scrolled away above. */
  top: number;
  topLine: number;
  /** Expanded steps, by row index (stable while loops open and close). */
  expanded: ReadonlySet<number>;
  /** Open loops, by their first row index. */
  open: ReadonlySet<number>;
  showSummary: boolean;
  note: string;
}

export const REPLAY_KEYS = '↑/↓ j/k move · PgUp/PgDn · g/G top/end · enter expand · e/E next/prev error · s summary · q quit';
/** The footer when the terminal is too narrow for REPLAY_KEYS: the essentials, quit last so it is never cut. */
const REPLAY_KEYS_SHORT = 'j/k move · enter open · e error · s summary · q quit';
const REPLAY_KEYS_TINY = 'j/k · enter · e · q quit';

/** Terminals narrower than this show steps without seq, latency and cost. */
const COMPACT_BELOW = 90;

/** What one keypress asks for; a burst of keys in one stdin chunk becomes several. */
type Action = 'up' | 'down' | 'pageUp' | 'pageDown' | 'home' | 'end' | 'toggle' | 'collapse' | 'nextError' | 'prevError' | 'summary' | 'quit' | 'interrupt';

function actionOf(input: string, key: Partial<Key>): Action | undefined {
  if (key.ctrl && input === 'c') return 'interrupt';
  if (input === 'q' || key.escape) return 'quit';
  if (key.upArrow || input === 'k') return 'up';
  if (key.downArrow || input === 'j') return 'down';
  if (key.pageUp || input === 'b') return 'pageUp';
  if (key.pageDown || input === ' ' || input === 'f') return 'pageDown';
  if (input === 'g' || key.home) return 'home';
  if (input === 'G' || key.end) return 'end';
  if (key.leftArrow || input === 'h') return 'collapse';
  if (key.return || key.rightArrow || input === 'l' || input === '\r' || input === '\n') return 'toggle';
  if (input === 'e' || input === 'n') return 'nextError';
  if (input === 'E' || input === 'N' || input === 'p') return 'prevError';
  if (input === 's') return 'summary';
  return undefined;
}

/**
 * The actions of one input event. ink hands over plain text that arrived in one stdin chunk as
 * one string ("jjj" when keys are typed or repeated faster than it reads them): each character is
 * a key of its own. Escape sequences (arrows, pages) arrive one per event.
 */
export function actionsOf(input: string, key: Partial<Key>): Action[] {
  const special = key.upArrow || key.downArrow || key.leftArrow || key.rightArrow || key.pageUp || key.pageDown || key.home || key.end || key.escape || key.ctrl || key.return;
  if (special || input.length <= 1) {
    const a = actionOf(input, key);
    return a ? [a] : [];
  }
  const out: Action[] = [];
  for (const ch of input) {
    const a = actionOf(ch, {});
    if (a) out.push(a);
  }
  return out;
}

function loopHeadline(loop: LoopRun, first: TimelineRow, open: boolean, c: ChalkInstance, width: number): string {
  const offset = c.dim(formatOffset(first.offsetMs).padStart(10));
  const what = `${c.dim(treeGuide(first))}${c.cyan('tool_call')}  ${open ? '▾' : '▸'} ${safe(loop.tool)}`;
  const gap = formatDuration(loop.medianGapMs);
  const failed = loop.failed > 0 ? c.red(`${loop.failed} failed`) : '0 failed';
  const error = loop.failed > 0 ? `  ${c.red.bold('ERROR')}` : '';
  const longTail = `  ${c.bold(`×${loop.calls}`)}  ${failed}  ${loop.backoff ? `backoff, median gap ${gap}` : c.red(`no backoff (median gap ${gap})`)}${error}`;
  const shortTail = `  ${c.bold(`×${loop.calls}`)}  ${failed}  ${loop.backoff ? 'backoff' : c.red('no backoff')}${error}`;
  // The tool, the count, the failures and whether it backed off matter most: the agent and the
  // gap's figure give way first on a narrow terminal.
  const mark = `${open ? '▾' : '▸'} ${safe(loop.tool)}`;
  const tries = [`${offset}  ${c.bold(safe(loop.agentId))}  ${what}${longTail}`, `${offset}  ${what}${longTail}`, `${offset}  ${what}${shortTail}`, `${offset}  ${mark}${shortTail}`, `${mark}${shortTail}`];
  for (const t of tries) if (visibleLength(t) <= width) return t;
  return fitWithTail(mark, shortTail, width);
}

/**
 * The interactive replay: a scrolling timeline with one selected step that can be expanded to
 * its full input, output and reasoning (wrapped to the terminal, scrolled with j/k when taller
 * than the screen), retry loops folded into one line, and jumps between errors. Every event
 * string is sanitized by the render helpers before it reaches the terminal.
 */
export function ReplayApp(props: ReplayAppProps) {
  const { exit } = useApp();
  const { stdout } = useStdout();
  const width = Math.max(30, stdout?.columns ?? 100);
  const height = Math.max(3, props.height ?? (stdout?.rows ?? 30) - 4);
  const [rows, setRows] = useState(props.rows);
  // One state object updated functionally, so several keys arriving in one tick all apply.
  const [ui, setUi] = useState<ViewState>({ cursor: 0, top: 0, topLine: 0, expanded: new Set(), open: new Set(), showSummary: false, note: '' });
  const c = props.chalk;

  useEffect(() => {
    if (!props.subscribe) return undefined;
    return props.subscribe((next) => setRows(next));
  }, [props.subscribe]);

  const loops = useMemo(() => findLoopRuns(rows), [rows]);
  // Items depend on which loops are open; computed once per open set (state updates may ask often).
  const itemsCache = useMemo(() => new WeakMap<ReadonlySet<number>, ViewItem[]>(), [rows, loops]);
  const itemsFor = (open: ReadonlySet<number>): ViewItem[] => {
    let items = itemsCache.get(open);
    if (!items) {
      items = viewItems(rows, loops, open);
      itemsCache.set(open, items);
    }
    return items;
  };
  const lineWidth = width - 1;
  const cache = useMemo(() => new Map<number, string[]>(), [rows, c, lineWidth]);
  /** The lines under an expanded step, wrapped to the screen. */
  const detailLines = (row: number, expanded: ReadonlySet<number>): string[] => {
    if (!expanded.has(row) || !rows[row]) return [];
    let lines = cache.get(row);
    if (!lines) {
      const raw = details(rows[row]!, { full: true, truncateAt: 160 }, c);
      if (raw.length === 0) raw.push(c.dim('                  (no details)'));
      lines = raw.flatMap((l) => wrapLine(` ${l}`, lineWidth));
      cache.set(row, lines);
    }
    return lines;
  };
  const itemHeight = (item: ViewItem | undefined, expanded: ReadonlySet<number>): number => (item && item.kind === 'row' ? 1 + detailLines(item.row, expanded).length : 1);

  /** Scrolls (top, topLine) so the cursor's headline is on screen, moving as little as possible. */
  const reveal = (v: ViewState, cursor: number, items: ViewItem[]): Pick<ViewState, 'top' | 'topLine'> => {
    if (cursor < v.top || (cursor === v.top && v.topLine > 0)) return { top: cursor, topLine: 0 };
    let used = itemHeight(items[v.top], v.expanded) - v.topLine;
    for (let i = v.top + 1; i <= cursor && used <= height; i++) used += i === cursor ? 1 : itemHeight(items[i], v.expanded);
    if (cursor === v.top || used <= height) return { top: v.top, topLine: v.topLine };
    // The cursor's headline becomes the last line on screen.
    let remaining = height - 1;
    for (let i = cursor - 1; i >= 0; i--) {
      const h = itemHeight(items[i], v.expanded);
      if (h <= remaining) remaining -= h;
      else return { top: i, topLine: h - remaining };
    }
    return { top: 0, topLine: 0 };
  };

  /** Lines from the top of the screen to the end of the cursor's item. */
  const linesToCursorEnd = (v: ViewState, items: ViewItem[]): number => {
    let used = itemHeight(items[v.top], v.expanded) - v.topLine;
    for (let i = v.top + 1; i <= v.cursor && used <= height + 1; i++) used += itemHeight(items[i], v.expanded);
    return used;
  };

  const apply = (v: ViewState, action: Action): ViewState => {
    const items = itemsFor(v.open);
    const last = Math.max(0, items.length - 1);
    const moveTo = (target: number, note = ''): ViewState => {
      const cursor = Math.max(0, Math.min(last, target));
      return { ...v, cursor, ...reveal(v, cursor, items), note };
    };
    switch (action) {
      case 'down':
        // An expanded step taller than the screen scrolls line by line before the cursor moves on.
        if (linesToCursorEnd(v, items) > height) return v.topLine + 1 < itemHeight(items[v.top], v.expanded) ? { ...v, topLine: v.topLine + 1, note: '' } : { ...v, top: v.top + 1, topLine: 0, note: '' };
        return moveTo(v.cursor + 1);
      case 'up':
        if (v.cursor === v.top && v.topLine > 0) return { ...v, topLine: v.topLine - 1, note: '' };
        return moveTo(v.cursor - 1);
      case 'pageDown': {
        const rest = linesToCursorEnd(v, items);
        if (rest > height) {
          // Page through the expanded text, keeping one line of overlap.
          let top = v.top;
          let topLine = v.topLine + height - 1;
          while (top < v.cursor && topLine >= itemHeight(items[top], v.expanded)) {
            topLine -= itemHeight(items[top], v.expanded);
            top++;
          }
          topLine = Math.min(topLine, Math.max(0, itemHeight(items[top], v.expanded) - 1));
          return { ...v, top, topLine, note: '' };
        }
        return moveTo(v.cursor + height);
      }
      case 'pageUp':
        if (v.cursor === v.top && v.topLine > 0) return { ...v, topLine: Math.max(0, v.topLine - (height - 1)), note: '' };
        return moveTo(v.cursor - height);
      case 'home':
        return moveTo(0);
      case 'end':
        return moveTo(last);
      case 'toggle':
      case 'collapse': {
        const item = items[v.cursor];
        if (!item) return v;
        if (item.kind === 'loop') {
          const open = new Set(v.open);
          if (open.has(item.loop.from) || action === 'collapse') open.delete(item.loop.from);
          else open.add(item.loop.from);
          return { ...v, open, ...reveal({ ...v, open }, v.cursor, itemsFor(open)), note: '' };
        }
        // h on a call inside an open loop closes the loop and goes back to its line.
        if (action === 'collapse' && item.inLoop && !v.expanded.has(item.row)) {
          const idx = items.findIndex((x) => x.kind === 'loop' && x.loop.from <= item.row && item.row <= x.loop.to);
          const loop = items[idx];
          if (loop && loop.kind === 'loop') {
            const open = new Set(v.open);
            open.delete(loop.loop.from);
            const next = { ...v, open, cursor: idx };
            return { ...next, ...reveal(next, idx, itemsFor(open)), note: '' };
          }
        }
        const expanded = new Set(v.expanded);
        if (expanded.has(item.row) || action === 'collapse') expanded.delete(item.row);
        else expanded.add(item.row);
        const next = { ...v, expanded };
        return { ...next, ...reveal(next, v.cursor, items), note: '' };
      }
      case 'nextError':
      case 'prevError': {
        const dir = action === 'nextError' ? 1 : -1;
        for (let i = v.cursor + dir; i >= 0 && i < items.length; i += dir) {
          const it = items[i]!;
          if (it.kind === 'loop' ? it.loop.failed > 0 : isError(rows[it.row]!)) return moveTo(i);
        }
        return { ...v, note: dir === 1 ? 'no error below' : 'no error above' };
      }
      case 'summary':
        return { ...v, showSummary: !v.showSummary, note: '' };
      default:
        return v;
    }
  };

  // Updates run against the newest rows even when a key arrives before ink re-registered this
  // render's handler (live rows may have changed in between).
  const applyRef = useRef(apply);
  applyRef.current = apply;

  useInput((input, key) => {
    const actions = actionsOf(input, key);
    // Quitting ends the burst: keys after it are not for this view.
    const stop = actions.findIndex((a) => a === 'quit' || a === 'interrupt');
    const run = stop >= 0 ? actions.slice(0, stop) : actions;
    if (run.length > 0) setUi((v) => run.reduce((x, a) => applyRef.current(x, a), v));
    if (stop < 0) return;
    if (actions[stop] === 'quit' && props.onBack) {
      props.onBack();
      return;
    }
    props.onExit?.();
    exit();
  });

  const items = itemsFor(ui.open);
  const { cursor, showSummary, note } = ui;
  // Below this width every line uses the compact form, so the columns stay aligned.
  const compact = lineWidth < COMPACT_BELOW;
  const top = Math.min(ui.top, Math.max(0, items.length - 1));
  const visible: string[] = [];
  if (showSummary) visible.push(...props.summary.flatMap((l) => wrapLine(l, lineWidth)).slice(0, height));
  else {
    let skip = top === ui.top ? ui.topLine : 0;
    for (let i = top; i < items.length && visible.length < height; i++) {
      const item = items[i]!;
      const mark = i === cursor ? c.inverse('›') : ' ';
      const lines: string[] = [];
      if (item.kind === 'loop') lines.push(`${mark}${loopHeadline(item.loop, rows[item.loop.from]!, item.open, c, lineWidth - 1)}`);
      else {
        const indent = item.inLoop ? ' ' : '';
        lines.push(`${mark}${indent}${headlineFit(rows[item.row]!, c, lineWidth - 1 - indent.length, compact)}`);
        lines.push(...detailLines(item.row, ui.expanded));
      }
      for (const l of lines) {
        if (skip > 0) {
          skip--;
          continue;
        }
        if (visible.length >= height) break;
        visible.push(fit(l, lineWidth));
      }
    }
    if (items.length === 0) visible.push(c.dim('  (no events match)'));
  }
  const errors = rows.filter(isError).length;
  const position = items.length === 0 ? '0/0' : `${cursor + 1}/${items.length}`;
  const keys = lineWidth >= REPLAY_KEYS.length + (note ? note.length + 3 : 0) ? REPLAY_KEYS : lineWidth >= REPLAY_KEYS_SHORT.length + (note ? note.length + 3 : 0) ? REPLAY_KEYS_SHORT : REPLAY_KEYS_TINY;
  const back = props.onBack ? keys.replace(/q quit$/, 'q back') : keys;
  // The footer keeps its end (how to quit) and the note; the title gives way first in the header.
  const status = c.dim(`${position} · ${errors} errors`);
  return (
    <Box flexDirection="column">
      <Text>{fitWithTail(c.bold(props.title), `  ${status}`, lineWidth)}</Text>
      <Text>{visible.join('\n')}</Text>
      <Text>{note ? fitWithTail(c.yellow(note), c.dim(` · ${back}`), lineWidth) : fit(c.dim(back), lineWidth)}</Text>
    </Box>
  );
}
