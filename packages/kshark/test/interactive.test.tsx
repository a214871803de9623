import { describe, expect, it } from 'vitest';
import { EventEmitter } from 'node:events';
import type { ReactElement } from 'react';
import { render as inkRender } from 'ink';
import { render } from 'ink-testing-library';
import type { AgentEvent } from '@agenttrace/contract';
import type { SessionSummary } from '@agenttrace/sessions';
import { actionsOf, buildTimeline, findLoopRuns, makeChalk, ReplayApp, TopApp, type TopSnapshot } from '@agenttrace/kshark';
import { makeEvent } from '../../../test-support/stack.js';
import { HOSTILE, sampleSession } from './fixtures.js';

const tick = (ms = 30) => new Promise((r) => setTimeout(r, ms));
/** Waits (bounded) until the last frame satisfies `ok`; input is processed asynchronously by ink. */
async function until(frame: () => string | undefined, ok: (f: string) => boolean, timeoutMs = 3000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const f = frame() ?? '';
    if (ok(f) || Date.now() > deadline) return f;
    await tick(15);
  }
}
const T0 = Date.parse('2026-01-15T14:00:00Z');
const rows = buildTimeline(sampleSession('sess_ui', T0));
const plain = makeChalk(false);

/** The line the cursor is on. */
const selected = (frame: string) => frame.split('\n').find((l) => l.startsWith('›')) ?? '';

describe('interactive replay (ink)', () => {
  it('scrolls with j/k and keeps the cursor on screen', async () => {
    const ui = render(<ReplayApp title="kshark replay sess_ui" rows={rows} summary={['summary line']} chalk={plain} height={4} />);
    await tick();
    expect(selected(ui.lastFrame()!)).toContain('session_start');
    expect(ui.lastFrame()).toContain('1/10 · 2 errors');
    for (let i = 0; i < 6; i++) {
      ui.stdin.write('j');
      await tick(10);
    }
    const frame = await until(ui.lastFrame, (f) => f.includes('7/10'));
    expect(selected(frame)).toContain('render.pdf');
    expect(frame).toContain('7/10');
    // Only `height` timeline lines are drawn: the first rows scrolled away.
    expect(frame).not.toContain('session_start');
    ui.stdin.write('k');
    expect(selected(await until(ui.lastFrame, (f) => f.includes('6/10')))).toContain('decision');
    ui.unmount();
  });

  it('jumps to the next and previous error', async () => {
    const ui = render(<ReplayApp title="t" rows={rows} summary={[]} chalk={plain} height={20} />);
    await tick();
    ui.stdin.write('e');
    expect(selected(await until(ui.lastFrame, (f) => f.includes('8/10')))).toContain('stripe.create_payment');
    ui.stdin.write('e');
    expect(selected(await until(ui.lastFrame, (f) => f.includes('9/10')))).toMatch(/error\s+GiveUp/);
    ui.stdin.write('e');
    expect(await until(ui.lastFrame, (f) => f.includes('no error below'))).toContain('no error below');
    ui.stdin.write('E');
    expect(selected(await until(ui.lastFrame, (f) => f.includes('8/10') && !f.includes('no error')))).toContain('stripe.create_payment');
    ui.unmount();
  });

  it('expands a step to its full input, output and reasoning, with escapes neutralized', async () => {
    const ui = render(<ReplayApp title="t" rows={rows} summary={[]} chalk={plain} height={20} />);
    await tick();
    for (let i = 0; i < 6; i++) ui.stdin.write('j');
    expect(await until(ui.lastFrame, (f) => f.includes('7/10'))).not.toContain('output:');
    ui.stdin.write('\r');
    const frame = await until(ui.lastFrame, (f) => f.includes('output:'));
    expect(frame).toContain('output: pwned\\e[2J\\e]0;evil-title\\x07 \\u{202e}gnp.exe\\x9b31m');
    expect(frame).not.toContain(HOSTILE);
    expect(frame).not.toMatch(/[\u0007\u009b\u202e]/);
    ui.stdin.write('\r');
    expect(await until(ui.lastFrame, (f) => !f.includes('output:'))).not.toContain('output:');
    ui.unmount();
  });

  it('shows the summary with s and follows live rows', async () => {
    let push: ((r: typeof rows) => void) | undefined;
    const ui = render(
      <ReplayApp
        title="t"
        rows={rows.slice(0, 3)}
        summary={['Session sess_ui  (source: kafka)']}
        chalk={plain}
        height={20}
        subscribe={(on) => {
          push = on;
          return () => (push = undefined);
        }}
      />,
    );
    await tick();
    expect(ui.lastFrame()).toContain('1/3');
    push!(rows);
    expect(await until(ui.lastFrame, (f) => f.includes('1/10'))).toContain('1/10');
    ui.stdin.write('s');
    expect(await until(ui.lastFrame, (f) => f.includes('Session sess_ui'))).toContain('Session sess_ui  (source: kafka)');
    ui.unmount();
  });

  it('quits on q', async () => {
    let exited = false;
    const ui = render(<ReplayApp title="t" rows={rows} summary={[]} chalk={plain} height={5} onExit={() => (exited = true)} />);
    await tick();
    ui.stdin.write('q');
    const deadline = Date.now() + 3000;
    while (!exited && Date.now() < deadline) await tick(15);
    expect(exited).toBe(true);
    ui.unmount();
  });
});

describe('kshark top (ink)', () => {
  it('computes events per second between polls and shows alerts', async () => {
    // Every poll sees 50 more events one (fake) second later: 50 events/s from the second poll on.
    let count = 50;
    let clock = 999_000;
    const poll = async (): Promise<TopSnapshot> => {
      count += 50;
      clock += 1000;
      return {
      source: 'Redis (dashboard consumer)',
      sessions: [
        {
          sessionId: 'sess_busy',
          agentId: 'invoice-agent',
          firstTs: new Date(clock - 60_000).toISOString(),
          lastTs: new Date(clock).toISOString(),
          eventCount: count,
          status: 'active',
          costUsd: 1.25,
          inputTokens: 0,
          outputTokens: 0,
          errorCount: 3,
          toolCalls: 50,
          currentStep: 'tool_call stripe.create_payment',
          source: 'redis',
        },
      ],
      alerts: [{ rule: 'tool_loop', session_id: 'sess_busy', message: 'sess_busy loops\u001b[2J', fired_at: '2026-01-15T14:00:00Z' }],
      };
    };
    const ui = render(<TopApp poll={poll} intervalMs={100} chalk={plain} now={() => clock} />);
    const deadline = Date.now() + 5000;
    while (count < 150 && Date.now() < deadline) await tick(20);
    await tick(20);
    const frame = ui.lastFrame()!;
    expect(frame).toMatch(/sess_busy\s+invoice-agent\s+active\s+\d+\s+50\.0\s+\$1\.2500\s+3/);
    expect(frame).toContain('sess_busy loops\\e[2J');
    expect(frame).not.toContain('\u001b[2J');
    expect(frame).toContain('tool_loop');
    ui.stdin.write('q');
    ui.unmount();
  });
});

/** A session whose agent calls lookup_invoice `calls` times back to back, all but the last failing, `gapMs` apart. */
function loopSession(sessionId: string, calls: number, gapMs: number): AgentEvent[] {
  let seq = 0;
  let t = T0;
  const ev = (o: Partial<AgentEvent>): AgentEvent => makeEvent({ session_id: sessionId, agent_id: 'invoice-agent', emitter_id: 'em_loop', seq: seq++, context: {}, timestamp: new Date(t).toISOString(), ...o });
  const out = [ev({ event_type: 'session_start', payload: {} })];
  t += 100;
  out.push(ev({ event_type: 'decision', payload: { name: 'route', action: 'escalate' }, context: { reasoning: 'amount above limit' } }));
  for (let i = 0; i < calls; i++) {
    t += gapMs;
    const last = i === calls - 1;
    out.push(ev({ event_type: 'tool_call', status: last ? 'ok' : 'error', payload: last ? { tool: 'lookup_invoice', input: { invoice: 'INV-1' }, output: { found: true }, latency_ms: 5 } : { tool: 'lookup_invoice', input: { invoice: 'INV-1' }, error: { name: 'Locked', message: 'invoice locked' }, latency_ms: 5 } }));
  }
  t += 100;
  out.push(ev({ event_type: 'session_end', status: 'ok', payload: {} }));
  return out;
}

/**
 * ink-testing-library's terminal is 100 columns wide; this one has the given width, so ink lays
 * the frame out (and would wrap any longer line) as on a terminal of that size.
 */
function renderAt(tree: ReactElement, columns: number) {
  class Out extends EventEmitter {
    readonly columns = columns;
    readonly rows = 30;
    frame = '';
    write = (f: string) => {
      this.frame = f;
    };
  }
  class In extends EventEmitter {
    isTTY = true;
    data: string | null = null;
    write = (d: string) => {
      this.data = d;
      this.emit('readable');
    };
    read = () => {
      const d = this.data;
      this.data = null;
      return d;
    };
    setEncoding() {}
    setRawMode() {}
    resume() {}
    pause() {}
    ref() {}
    unref() {}
  }
  const stdout = new Out();
  const stdin = new In();
  const app = inkRender(tree, { stdout: stdout as never, stderr: new Out() as never, stdin: stdin as never, debug: true, exitOnCtrlC: false, patchConsole: false });
  return { stdin, lastFrame: () => stdout.frame, unmount: () => app.unmount() };
}

describe('replay view: retry loops, bursts, wrapping, narrow terminals (#16)', () => {
  it('folds a retry loop into one row with its count, failures and backoff, and opens it with enter', async () => {
    const loop = buildTimeline(loopSession('sess_loop', 40, 12));
    const ui = render(<ReplayApp title="t" rows={loop} summary={[]} chalk={plain} height={20} />);
    await tick();
    let frame = ui.lastFrame()!;
    // session_start, decision, the loop, session_end: 4 items for 43 events.
    expect(frame).toContain('1/4');
    const row = frame.split('\n').filter((l) => l.includes('lookup_invoice'));
    expect(row).toHaveLength(1);
    expect(row[0]).toMatch(/▸ lookup_invoice\s+×40\s+39 failed\s+no backoff \(median gap 12ms\)\s+ERROR/);
    // e jumps to the loop (it holds failures), enter opens it: its 40 calls are listed under it.
    ui.stdin.write('e');
    expect(selected(await until(ui.lastFrame, (f) => f.includes('3/4')))).toContain('lookup_invoice');
    ui.stdin.write('\r');
    frame = await until(ui.lastFrame, (f) => f.includes('3/44'));
    expect(frame).toContain('▾ lookup_invoice');
    expect(frame.split('\n').filter((l) => l.includes('lookup_invoice')).length).toBeGreaterThan(10);
    // A call inside can be expanded; h on a call closes the loop again.
    ui.stdin.write('j');
    expect(await until(ui.lastFrame, (f) => f.includes('4/44'))).toContain('4/44');
    ui.stdin.write('h');
    frame = await until(ui.lastFrame, (f) => f.includes('3/4 '));
    expect(frame).toContain('▸ lookup_invoice');
    ui.unmount();
    // With seconds between the attempts it is a loop with backoff.
    const slow = render(<ReplayApp title="t" rows={buildTimeline(loopSession('sess_slow', 5, 5000))} summary={[]} chalk={plain} height={20} />);
    await tick();
    expect(slow.lastFrame()).toMatch(/×5\s+4 failed\s+backoff, median gap 5\.00s/);
    slow.unmount();
    const runs = findLoopRuns(loop);
    expect(runs).toEqual([expect.objectContaining({ from: 2, to: 41, tool: 'lookup_invoice', calls: 40, failed: 39, backoff: false })]);
  });

  it('processes every key of a burst written as one chunk', async () => {
    const ui = render(<ReplayApp title="t" rows={rows} summary={[]} chalk={plain} height={20} />);
    await tick();
    // Six moves and an expand in one stdin chunk, as a fast typist or key repeat delivers them.
    ui.stdin.write('jjjjjj\r');
    const frame = await until(ui.lastFrame, (f) => f.includes('7/10') && f.includes('output:'));
    expect(selected(frame)).toContain('render.pdf');
    expect(frame).toContain('output: pwned');
    // Arrow keys in one chunk (escape sequences) too.
    ui.stdin.write('\u001b[A\u001b[A\u001b[A');
    expect(selected(await until(ui.lastFrame, (f) => f.includes('4/10')))).toContain('web.search');
    expect(actionsOf('jjk\rq', {})).toEqual(['down', 'down', 'up', 'toggle', 'quit']);
    ui.unmount();
  });

  it('stops a burst at q: the keys after it are not applied', async () => {
    let exited = 0;
    const ui = render(<ReplayApp title="t" rows={rows} summary={[]} chalk={plain} height={20} onExit={() => exited++} />);
    await tick();
    ui.stdin.write('jjqjj');
    const deadline = Date.now() + 3000;
    while (exited === 0 && Date.now() < deadline) await tick(15);
    expect(exited).toBe(1);
    ui.unmount();
  });

  it('wraps expanded text to the terminal and scrolls through it instead of cutting it', async () => {
    const long = Array.from({ length: 60 }, (_, i) => `sentence ${i} of the model's answer.`).join(' ');
    const events = sampleSession('sess_long', T0);
    events[3] = { ...events[3]!, payload: { ...events[3]!.payload, output: long } };
    const ui = renderAt(<ReplayApp title="t" rows={buildTimeline(events)} summary={[]} chalk={plain} height={12} />, 80);
    await tick();
    // The research sub-agent's LLM call, fifth in the tree.
    ui.stdin.write('jjjj\r');
    let frame = await until(ui.lastFrame, (f) => f.includes('output:'));
    expect(frame.split('\n').every((l) => l.length <= 80)).toBe(true);
    expect(frame).toContain('sentence 0 of');
    expect(frame).not.toContain('sentence 59 of');
    expect(frame).not.toMatch(/more lines/);
    // j scrolls through the expanded step line by line, the cursor staying on it, until its end is on screen.
    const seen = new Set<string>();
    for (let i = 0; i < 60 && !frame.includes("sentence 59 of the model's answer."); i++) {
      const before = frame;
      ui.stdin.write('j');
      frame = await until(ui.lastFrame, (f) => f !== before);
      expect(frame).toContain('5/10');
      for (const l of frame.split('\n')) seen.add(l.trim());
    }
    expect(frame).toContain("sentence 59 of the model's answer.");
    // Every sentence was on screen whole at some point: wrapped at spaces, nothing cut.
    const text = [...seen].join(' ');
    for (let i = 0; i < 60; i++) expect(text).toContain(`sentence ${i} of the model's answer.`);
    // Past the end of the step (its reasoning follows the output), j moves on to the next step.
    for (let i = 0; i < 5 && !frame.includes('6/10'); i++) {
      ui.stdin.write('j');
      frame = await until(ui.lastFrame, (f) => f.includes('6/10'), 300);
    }
    expect(frame).toContain('reasoning: need a summary');
    expect(frame).toContain('6/10');
    ui.unmount();
  });

  it.each([80, 60])('keeps the ERROR markers and the footer at %i columns', async (columns) => {
    const ui = renderAt(<ReplayApp title="kshark replay sess_a_rather_long_session_identifier_from_production (redis)" rows={rows} summary={[]} chalk={plain} height={12} />, columns);
    await tick();
    const frame = await until(ui.lastFrame, (f) => f.includes('q quit'));
    const lines = frame.split('\n');
    expect(lines.every((l) => l.length <= columns)).toBe(true);
    // The failed payment, the error event and the failed session's end all show their marker.
    expect(lines.filter((l) => /ERROR$/.test(l.trimEnd()))).toHaveLength(3);
    expect(lines.find((l) => l.includes('ERROR') && l.includes('tool_call'))).toBeDefined();
    expect(lines[0]).toContain('1/10 · 2 errors');
    expect(lines.at(-1)).toMatch(/q quit$/);
    ui.stdin.write('e');
    const after = await until(ui.lastFrame, (f) => f.includes('8/10'));
    expect(selected(after)).toMatch(/ERROR$/);
    ui.unmount();
    // A folded loop keeps its tool, count, failures, backoff verdict and marker.
    const loop = renderAt(<ReplayApp title="t" rows={buildTimeline(loopSession('sess_loop', 847, 12))} summary={[]} chalk={plain} height={12} />, columns);
    await tick();
    const line = (await until(loop.lastFrame, (f) => f.includes('×847'))).split('\n').find((l) => l.includes('×847')) ?? '';
    expect(line.length).toBeLessThanOrEqual(columns);
    expect(line).toMatch(/lookup_invoice\s+×847\s+846 failed\s+no backoff.*ERROR$/);
    loop.unmount();
  });
});

describe('kshark top opens a session (#16)', () => {
  const session = (id: string, status: string): SessionSummary => ({
    sessionId: id,
    agentId: 'invoice-agent',
    firstTs: new Date(T0).toISOString(),
    lastTs: new Date(T0 + 7000).toISOString(),
    eventCount: 10,
    status: status as SessionSummary['status'],
    costUsd: 0.01,
    inputTokens: 0,
    outputTokens: 0,
    errorCount: 2,
    toolCalls: 3,
    currentStep: 'session_end',
    source: 'redis',
  });

  it('enter opens the selected session\'s replay, q and Esc come back to the list', async () => {
    const poll = async (): Promise<TopSnapshot> => ({ source: 'Redis (dashboard consumer)', sessions: [session('sess_first', 'completed'), session('sess_second', 'error')], alerts: [] });
    const opened: string[] = [];
    const openReplay = async (id: string) => {
      opened.push(id);
      return { title: `kshark replay ${id} (redis)`, rows: buildTimeline(sampleSession(id, T0)), summary: [`Session ${id}`] };
    };
    const ui = render(<TopApp poll={poll} intervalMs={200} chalk={plain} openReplay={openReplay} />);
    let frame = await until(ui.lastFrame, (f) => f.includes('sess_second'));
    expect(selected(frame)).toContain('sess_first');
    ui.stdin.write('j');
    expect(selected(await until(ui.lastFrame, (f) => selected(f).includes('sess_second')))).toContain('sess_second');
    ui.stdin.write('\r');
    frame = await until(ui.lastFrame, (f) => f.includes('kshark replay sess_second'));
    // The replay's key handler is attached once its first frame is committed.
    await tick(50);
    expect(opened).toEqual(['sess_second']);
    expect(frame).toContain('1/10 · 2 errors');
    expect(frame).toMatch(/q back$/m);
    // Keys go to the replay while it is open.
    ui.stdin.write('e');
    expect(selected(await until(ui.lastFrame, (f) => f.includes('8/10')))).toContain('stripe.create_payment');
    ui.stdin.write('q');
    frame = await until(ui.lastFrame, (f) => f.includes('SESSION'));
    expect(frame).toContain('kshark top');
    expect(selected(frame)).toContain('sess_second');
    await tick(50);
    // Esc comes back as well, and a second enter opens the session again.
    ui.stdin.write('\r');
    await until(ui.lastFrame, (f) => f.includes('kshark replay sess_second'));
    await tick(50);
    ui.stdin.write('\u001b');
    frame = await until(ui.lastFrame, (f) => f.includes('SESSION'), 3000);
    expect(frame).toContain('kshark top');
    expect(opened).toEqual(['sess_second', 'sess_second']);
    ui.unmount();
  });

  it('q while a session is still being read goes back to the list', async () => {
    const poll = async (): Promise<TopSnapshot> => ({ source: 'Redis (dashboard consumer)', sessions: [session('sess_slow', 'active')], alerts: [] });
    let release: (() => void) | undefined;
    const openReplay = (id: string) =>
      new Promise<{ title: string; rows: typeof rows; summary: string[] }>((resolve) => {
        release = () => resolve({ title: `kshark replay ${id} (kafka)`, rows, summary: [] });
      });
    const ui = render(<TopApp poll={poll} intervalMs={200} chalk={plain} openReplay={openReplay} />);
    await until(ui.lastFrame, (f) => f.includes('sess_slow'));
    await tick(50);
    ui.stdin.write('\r');
    expect(await until(ui.lastFrame, (f) => f.includes('opening sess_slow'))).toContain('q goes back');
    await tick(50);
    ui.stdin.write('q');
    expect(await until(ui.lastFrame, (f) => f.includes('SESSION'))).toContain('kshark top');
    // The late answer does not open the view any more.
    release!();
    await tick(100);
    expect(ui.lastFrame()).toContain('SESSION');
    ui.unmount();
  });
});
