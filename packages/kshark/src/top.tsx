import { useEffect, useRef, useState } from 'react';
import { Box, Text, useApp, useInput, useStdout } from 'ink';
import type { ChalkInstance } from 'chalk';
import type { AlertSummary, SessionSummary } from '@agenttrace/sessions';
import { fit, formatDuration, safe } from './render.js';

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
}

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
  const c = props.chalk;
  const now = props.now ?? Date.now;

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

  useInput((input, key) => {
    if (input === 'q' || key.escape || (key.ctrl && input === 'c')) exit();
  });

  const lines: string[] = [];
  const header = `${'SESSION'.padEnd(30)} ${'AGENT'.padEnd(22)} ${'STATUS'.padEnd(9)} ${'EVENTS'.padStart(7)} ${'EV/S'.padStart(6)} ${'COST'.padStart(9)} ${'ERR'.padStart(4)} ${'IDLE'.padStart(6)}  STEP`;
  lines.push(c.bold(header));
  if (snap) {
    const t = now();
    for (const s of snap.sessions.slice(0, props.limit ?? 20)) {
      const rate = rates.current.get(s.sessionId)?.perSec ?? 0;
      const idle = formatDuration(Math.max(0, t - Date.parse(s.lastTs)));
      const status = s.status === 'error' ? c.red(s.status.padEnd(9)) : s.status === 'active' ? c.green(s.status.padEnd(9)) : s.status.padEnd(9);
      lines.push(
        `${safe(s.sessionId).slice(0, 30).padEnd(30)} ${safe(s.agentId).slice(0, 22).padEnd(22)} ${status} ${String(s.eventCount).padStart(7)} ${rate.toFixed(1).padStart(6)} ${`$${s.costUsd.toFixed(4)}`.padStart(9)} ${(s.errorCount > 0 ? c.red(String(s.errorCount).padStart(4)) : '0'.padStart(4))} ${idle.padStart(6)}  ${safe(s.currentStep)}`,
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
      <Text>{fit(`${c.bold('kshark top')}  ${c.dim(`${snap?.source ?? ''} · every ${formatDuration(props.intervalMs)} · q quits`)}`, width - 1)}</Text>
      <Text>{lines.map((l) => fit(l, width - 1)).join('\n')}</Text>
      {error ? <Text>{fit(c.red(`error: ${error}`), width - 1)}</Text> : null}
    </Box>
  );
}
