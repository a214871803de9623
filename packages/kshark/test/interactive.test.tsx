import { describe, expect, it } from 'vitest';
import { render } from 'ink-testing-library';
import { buildTimeline, makeChalk, ReplayApp, TopApp, type TopSnapshot } from '@agenttrace/kshark';
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
