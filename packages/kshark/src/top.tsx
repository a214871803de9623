import { useEffect, useRef, useState } from 'react';
import { Box, Text, useApp, useInput, useStdout } from 'ink';
import type { ChalkInstance } from 'chalk';
import type { AlertSummary, SessionSummary } from '@agenttrace/sessions';
import { ReplayApp } from './interactive.js';
import { errorMessage } from '@agenttrace/common';
import { fit, formatDuration, safe } from './render.js';
import type { TimelineRow } from './timeline.js';

export interface TopSnapshot {
  sessions: SessionSummary[];
  alerts: AlertSummary[];
  /** Where the numbers come from, e.g. "Redis (dashboard consumer)". */
  source: string;
}

export interface TopAppProps {
  poll: () => Promise<TopSnapshot>;
  intervalMs: number;
  chalk: ChalkInstance;
  /** Rows of sessions shown. */
  limit?: number;
  now?: () => number;
  /** Reads a session for the replay view Enter opens (absent: Enter does nothing). */
  openReplay?: (sessionId: string) => Promise<ReplayView>;
}

/** What the replay view opened from top shows. */
export interface ReplayView {
  title: string;
  rows: TimelineRow[];
  summary: string[];
}

type Opened = { sessionId: string; view?: ReplayView };

interface Rate {
  count: number;
  at: number;
  perSec: number;
}

/**
 * `kshark top`: active sessions with their current step, events per second (from the change in
 * event count between polls), cost so far and the latest alerts. ink rewrites only what
 * changed, so refreshing does not flicker; q or Ctrl-C quits.
 */
export function TopApp(props: TopAppProps) {
  const { exit } = useApp();
  const { stdout } = useStdout();
  const width = Math.max(60, stdout?.columns ?? 100);
  const [snap, setSnap] = useState<TopSnapshot | undefined>();
  const [error, setError] = useState('');
  const rates = useRef(new Map<string, Rate>());
  // The selection follows the session, not the row, as polls reorder the list.
  const [selected, setSelected] = useState<string | undefined>();
  const [opened, setOpened] = useState<Opened | undefined>();
  const [openError, setOpenError] = useState('');
  const c = props.chalk;
  const now = props.now ?? Date.now;
  const shown = snap ? snap.sessions.slice(0, props.limit ?? 20) : [];
  const cursor = Math.max(0, shown.findIndex((s) => s.sessionId === selected));
  // The key handler can run before the render that follows a poll has re-registered it: it reads
  // the list and the selection from here, never from its own closure.
  const latest = useRef({ shown, cursor });
  latest.current = { shown, cursor };

  useEffect(() => {
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const tick = async () => {
      try {
        const s = await props.poll();
        if (stopped) return;
        const t = now();
        const next = new Map<string, Rate>();
        for (const row of s.sessions) {
          const prev = rates.current.get(row.sessionId);
          const perSec = prev && t > prev.at ? ((row.eventCount - prev.count) * 1000) / (t - prev.at) : 0;
          next.set(row.sessionId, { count: row.eventCount, at: t, perSec: Math.max(0, perSec) });
        }
        rates.current = next;
        setSnap(s);
        setError('');
      } catch (err) {
        if (!stopped) setError(safe((err as Error).message ?? String(err)));
      }
      if (!stopped) timer = setTimeout(() => void tick(), props.intervalMs);
    };
    void tick();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }, []);

  const open = (sessionId: string): void => {
    if (!props.openReplay) return;
    setOpened({ sessionId });
    setOpenError('');
    props.openReplay(sessionId).then(
      (view) => setOpened((o) => (o && o.sessionId === sessionId ? { sessionId, view } : o)),
      (err: unknown) => {
        setOpened(undefined);
        setOpenError(safe(`cannot open ${sessionId}: ${errorMessage(err)}`));
      },
    );
  };

  useInput(
    (input, key) => {
      if (opened) {
        // Still reading the session: q or Esc gives up and stays in the list.
        if (input === 'q' || key.escape) setOpened(undefined);
        else if (key.ctrl && input === 'c') exit();
        return;
      }
      if (input === 'q' || key.escape || (key.ctrl && input === 'c')) {
        exit();
        return;
      }
      // Keys typed in a burst arrive as one string: each character counts.
      const keys = key.upArrow ? ['k'] : key.downArrow ? ['j'] : key.return ? ['\r'] : [...input];
      const { shown: list, cursor: from } = latest.current;
      let at = from;
      for (const k of keys) {
        if (k === 'q') {
          exit();
          return;
        }
        if (k === 'j') at = Math.min(list.length - 1, at + 1);
        else if (k === 'k') at = Math.max(0, at - 1);
        else if ((k === '\r' || k === '\n') && list[at]) {
          setSelected(list[at]!.sessionId);
          open(list[at]!.sessionId);
          return;
        }
      }
      if (list[at]) {
        const id = list[at]!.sessionId;
        latest.current = { shown: list, cursor: at };
        setSelected(id);
      }
    },
    // The replay view handles its own keys once it is shown.
    { isActive: opened?.view === undefined },
  );

  if (opened) {
    if (!opened.view) return <Text>{fit(c.dim(`opening ${safe(opened.sessionId)}… (q goes back)`), width - 1)}</Text>;
    return <ReplayApp {...opened.view} chalk={c} onBack={() => setOpened(undefined)} />;
  }

  const lines: string[] = [];
  const header = `  ${'SESSION'.padEnd(30)} ${'AGENT'.padEnd(22)} ${'STATUS'.padEnd(9)} ${'EVENTS'.padStart(7)} ${'EV/S'.padStart(6)} ${'COST'.padStart(9)} ${'ERR'.padStart(4)} ${'IDLE'.padStart(6)}  STEP`;
  lines.push(c.bold(header));
  if (snap) {
    const t = now();
    for (const [i, s] of shown.entries()) {
      const rate = rates.current.get(s.sessionId)?.perSec ?? 0;
      const idle = formatDuration(Math.max(0, t - Date.parse(s.lastTs)));
      const status = s.status === 'error' ? c.red(s.status.padEnd(9)) : s.status === 'active' ? c.green(s.status.padEnd(9)) : s.status.padEnd(9);
      lines.push(
        `${i === cursor ? c.inverse('›') : ' '} ${safe(s.sessionId).slice(0, 30).padEnd(30)} ${safe(s.agentId).slice(0, 22).padEnd(22)} ${status} ${String(s.eventCount).padStart(7)} ${rate.toFixed(1).padStart(6)} ${`$${s.costUsd.toFixed(4)}`.padStart(9)} ${(s.errorCount > 0 ? c.red(String(s.errorCount).padStart(4)) : '0'.padStart(4))} ${idle.padStart(6)}  ${safe(s.currentStep)}`,
      );
    }
    if (snap.sessions.length === 0) lines.push(c.dim('  (no sessions)'));
    lines.push('');
    lines.push(c.bold('ALERTS'));
    for (const a of snap.alerts.slice(0, 5)) lines.push(`${c.yellow(safe(a.rule).padEnd(16))} ${c.dim(safe(a.fired_at))} ${safe(a.message)}`);
    if (snap.alerts.length === 0) lines.push(c.dim('  (none)'));
  } else lines.push(c.dim('  loading…'));
  return (
    <Box flexDirection="column">
      <Text>{fit(`${c.bold('kshark top')}  ${c.dim(`${snap?.source ?? ''} · every ${formatDuration(props.intervalMs)} · ${props.openReplay ? 'j/k select · enter replay · ' : ''}q quits`)}`, width - 1)}</Text>
      <Text>{lines.map((l) => fit(l, width - 1)).join('\n')}</Text>
      {error ? <Text>{fit(c.red(`error: ${error}`), width - 1)}</Text> : null}
      {openError ? <Text>{fit(c.red(openError), width - 1)}</Text> : null}
    </Box>
  );
}
