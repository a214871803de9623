import { useEffect, useMemo, useState } from 'react';
import { Box, Text, useApp, useInput, useStdout } from 'ink';
import type { ChalkInstance } from 'chalk';
import { details, fit, headline } from './render.js';
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
  onExit?: () => void;
}

// session_end carries the session's outcome; the failing steps are the ones worth jumping to.
const isError = (r: TimelineRow) => r.event.event_type !== 'session_end' && (r.event.status === 'error' || r.event.event_type === 'error');

interface ViewState {
  cursor: number;
  top: number;
  expanded: ReadonlySet<number>;
  showSummary: boolean;
  note: string;
}

export const REPLAY_KEYS = '↑/↓ j/k move · PgUp/PgDn · g/G top/end · enter expand · e/E next/prev error · s summary · q quit';

/**
 * The interactive replay: a scrolling timeline with one selected step that can be expanded to
 * its full input, output and reasoning, and jumps between errors. Every event string is
 * sanitized by the render helpers before it reaches the terminal.
 */
export function ReplayApp(props: ReplayAppProps) {
  const { exit } = useApp();
  const { stdout } = useStdout();
  const width = Math.max(40, stdout?.columns ?? 100);
  const height = Math.max(5, props.height ?? (stdout?.rows ?? 30) - 4);
  const [rows, setRows] = useState(props.rows);
  // One state object updated functionally, so several keys arriving in one tick all apply.
  const [ui, setUi] = useState<ViewState>({ cursor: 0, top: 0, expanded: new Set(), showSummary: false, note: '' });
  const c = props.chalk;

  useEffect(() => {
    if (!props.subscribe) return undefined;
    return props.subscribe((next) => setRows(next));
  }, [props.subscribe]);

  const cache = useMemo(() => new Map<number, string[]>(), [rows, c, height]);
  const detailLines = (i: number, expanded: ReadonlySet<number>): string[] => {
    if (!expanded.has(i) || !rows[i]) return [];
    let lines = cache.get(i);
    if (!lines) {
      lines = details(rows[i]!, { full: true, truncateAt: 160 }, c);
      if (lines.length === 0) lines = [c.dim('                  (no details)')];
      const max = Math.max(3, height - 2);
      if (lines.length > max) lines = [...lines.slice(0, max - 1), c.dim(`                  … ${lines.length - max + 1} more lines (kshark replay --full prints everything)`)];
      cache.set(i, lines);
    }
    return lines;
  };

  /** The first visible row that keeps `target` on screen. */
  const topFor = (target: number, currentTop: number, expanded: ReadonlySet<number>): number => {
    if (target < currentTop) return target;
    let t = currentTop;
    let used = 0;
    for (let i = t; i <= target; i++) used += 1 + detailLines(i, expanded).length;
    while (t < target && used > height) {
      used -= 1 + detailLines(t, expanded).length;
      t++;
    }
    return t;
  };

  const move = (f: (v: ViewState) => number, note = '') =>
    setUi((v) => {
      const cursor = Math.max(0, Math.min(rows.length - 1, f(v)));
      return { ...v, cursor, top: topFor(cursor, v.top, v.expanded), note };
    });

  const jumpError = (dir: 1 | -1) =>
    setUi((v) => {
      for (let i = v.cursor + dir; i >= 0 && i < rows.length; i += dir) {
        if (isError(rows[i]!)) return { ...v, cursor: i, top: topFor(i, v.top, v.expanded), note: '' };
      }
      return { ...v, note: dir === 1 ? 'no error below' : 'no error above' };
    });

  useInput((input, key) => {
    if (input === 'q' || key.escape || (key.ctrl && input === 'c')) {
      props.onExit?.();
      exit();
      return;
    }
    if (key.upArrow || input === 'k') move((v) => v.cursor - 1);
    else if (key.downArrow || input === 'j') move((v) => v.cursor + 1);
    else if (key.pageUp || input === 'b') move((v) => v.cursor - height);
    else if (key.pageDown || input === ' ' || input === 'f') move((v) => v.cursor + height);
    else if (input === 'g' || key.home) move(() => 0);
    else if (input === 'G' || key.end) move(() => rows.length - 1);
    else if (key.return || key.rightArrow || key.leftArrow || input === 'l' || input === 'h') {
      const collapse = key.leftArrow || input === 'h';
      setUi((v) => {
        const expanded = new Set(v.expanded);
        if (expanded.has(v.cursor) || collapse) expanded.delete(v.cursor);
        else expanded.add(v.cursor);
        return { ...v, expanded, top: topFor(v.cursor, v.top, expanded), note: '' };
      });
    } else if (input === 'e' || input === 'n') jumpError(1);
    else if (input === 'E' || input === 'N' || input === 'p') jumpError(-1);
    else if (input === 's') setUi((v) => ({ ...v, showSummary: !v.showSummary, note: '' }));
  });

  const { cursor, top, expanded, showSummary, note } = ui;
  const visible: string[] = [];
  if (showSummary) visible.push(...props.summary.slice(0, height));
  else {
    for (let i = top; i < rows.length && visible.length < height; i++) {
      const mark = i === cursor ? c.inverse('›') : ' ';
      visible.push(fit(`${mark}${headline(rows[i]!, c)}`, width - 1));
      for (const l of detailLines(i, expanded)) {
        if (visible.length >= height) break;
        visible.push(fit(` ${l}`, width - 1));
      }
    }
    if (rows.length === 0) visible.push(c.dim('  (no events match)'));
  }
  const errors = rows.filter(isError).length;
  const position = rows.length === 0 ? '0/0' : `${cursor + 1}/${rows.length}`;
  return (
    <Box flexDirection="column">
      <Text>{fit(`${c.bold(props.title)}  ${c.dim(`${position} · ${errors} errors`)}`, width - 1)}</Text>
      <Text>{visible.join('\n')}</Text>
      <Text>{fit(c.dim(note ? `${note} · ${REPLAY_KEYS}` : REPLAY_KEYS), width - 1)}</Text>
    </Box>
  );
}
