/**
 * Every shell line of README.md and docs/*.md, and every command the demo prints under "Next,
 * try", runs as written after the README's set-up. The demo itself runs first (`npm run demo`,
 * on a topic of this test's own), so the sessions the commands name exist; the documents'
 * placeholder ids (`sess_a1b2c3`, `sess_incident_<id>`, ...) are replaced by the demo's.
 *
 * Each documented line must be classified below. A line this file does not know fails the test:
 * whoever adds a command to the docs says here how it is proven, or why it cannot run on one
 * machine (the list in docs/development.md, "Commands in the documents").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { deleteTopic, repoRoot, runProcess, uniqueName } from '../test-support/stack.js';

type How =
  /** runs to completion with one of these exit codes, printing something unless `silent` */
  | { run: number[]; silent?: true }
  /**
   * a service or a follower: runs until stopped; it must print `ready`, then, after SIGTERM (or
   * `signal`), `stopped` and exit 0. Under npx the status is npx's own: it reports the signal it
   * received (128 + n) even when the command exited 0, so that status counts as clean too.
   */
  | { service: RegExp; stopped: RegExp; signal?: NodeJS.Signals }
  /** cannot run on one machine, with the reason (documented in docs/development.md) */
  | { elsewhere: string };

/** How each documented line is proven, matched against the line as written (before substitution). */
const HOW: [RegExp, How][] = [
  [/^npm (run demo|test)\b/, { elsewhere: 'the README quick start: CI runs `npm test`; this test runs the demo itself' }],
  [/^npm run reliability\b/, { elsewhere: 'the reliability suite this test is part of' }],
  [/^scripts\/bench /, { elsewhere: 'a benchmark (minutes of load), run by hand; figures in docs/benchmarks.md' }],
  [/^kafka-(topics|configs)\.sh --bootstrap-server kafka:9092/, { elsewhere: 'a production cluster (kafka:9092) with Kafka command-line tools' }],
  [/--brokers k1:9092,k2:9092/, { elsewhere: 'production hosts (k1, k2, redis-1)' }],
  [/^(npx )?kafmirror (replicate|failover) .*--config clusters\.json/, { elsewhere: 'two clusters named in clusters.json (a DR pair); proven in packages/kafmirror/test' }],
  [/^(pip install|export OTEL_|opentelemetry-instrument python|kshark replay <conversation id)/, { elsewhere: 'a Python agent (PyPI is not reachable here); the same OTLP path is proven by packages/otlp/test with the OpenTelemetry JS SDK' }],
  [/npx agenttrace-otlp forward --group langfuse-export/, { elsewhere: 'a Langfuse account (credentials and the cloud); the same OTLP/HTTP path is proven by packages/otlp/test/forwarder.integration.test.ts against a backend decoding with the OTLP protobuf definitions' }],
  [/^npx agenttrace-otlp forward --endpoint http:\/\/127\.0\.0\.1:4318/, { service: /forwarding \S+ as group/, stopped: /stopped; \d+ records read/ }],
  [/npx agenttrace-otlp export /, { elsewhere: 'an OTLP backend (Jaeger, Langfuse, Phoenix); proven by packages/otlp/test/export.test.ts with a decoder built from the OTLP protobuf definitions' }],
  [/--help\b/, { run: [0] }],
  [/^(npx )?agenttrace-dashboard\b/, { service: /started/, stopped: /stopped after applying/ }],
  [/^(npx )?agenttrace-archiver\b/, { service: /partitions assigned|waiting for topic/, stopped: /stopped: \d+ files/ }],
  [/^npx agenttrace-otlp serve\b/, { service: /agenttrace-otlp: listening on/, stopped: /agenttrace-otlp: listening on/ }],
  [/(^|\s)npx agenttrace-web\b/, { service: /agenttrace-web listening on/, stopped: /agenttrace-web listening on/ }],
  [/^npx kshark replay .* --follow\b/, { service: /following \S+ \(Ctrl-C to stop\)/, stopped: /Session sess_/, signal: 'SIGINT' }],
  [/^npx kdiff compare \S+ \S+ --json \| jq/, { run: [0, 1] }],
  [/^(npx )?kdiff compare [^-]\S* [^-]\S*/, { run: [0, 1] }],
  [/^(npx )?kdiff (snapshot|compare) /, { run: [0, 1] }],
  [/kdiff compare "\$SESSION_ID" .*\|\| exit 1/, { run: [0, 1] }],
  [/^npx kshark (replay|sessions|top|patterns)\b/, { run: [0] }],
  [/^scripts\/stack up && eval/, { run: [0] }],
  [/^npx tsc -b packages\/<name>/, { run: [0], silent: true }],
  [/^npx vitest run packages\/<name>/, { run: [0] }],
];

/** Shell lines of fenced sh/bash blocks (continuations joined), with the file they come from. */
function documentedLines(): { file: string; line: string }[] {
  const files = ['README.md', ...readdirSync(join(repoRoot, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  const out: { file: string; line: string }[] = [];
  for (const file of files) {
    let inBlock = false;
    let pending = '';
    for (const raw of readFileSync(join(repoRoot, file), 'utf8').split('\n')) {
      if (/^```/.test(raw)) {
        inBlock = !inBlock && /^```(sh|bash|shell)\s*$/.test(raw);
        continue;
      }
      if (!inBlock) continue;
      const line = pending + raw.trim();
      if (line.endsWith('\\')) {
        pending = `${line.slice(0, -1)} `;
        continue;
      }
      pending = '';
      if (line === '' || line.startsWith('#')) continue;
      out.push({ file, line });
    }
  }
  return out;
}

function howOf(line: string): How | undefined {
  return HOW.find(([re]) => re.test(line))?.[1];
}

const topic = uniqueName('docs');
// kshark patterns --source archive copies archive files here (not into the user's own cache).
const cacheDir = mkdtempSync(join(tmpdir(), 'docs-cache-'));
const env: NodeJS.ProcessEnv = {
  ...process.env,
  NO_COLOR: '1',
  AGENTTRACE_TOPIC: topic,
  AGENTTRACE_S3_PREFIX: topic,
  // Services' metrics on any free port, so a service left by someone else cannot collide.
  AGENTTRACE_METRICS_PORT: '0',
  AGENTTRACE_ARCHIVER_METRICS_PORT: '0',
  // A group of this run's own: members left in the shared default group by other runs cannot delay it.
  AGENTTRACE_ARCHIVER_GROUP: topic,
  SLACK_WEBHOOK: 'http://127.0.0.1:9/webhook',
  AGENTTRACE_OTLP_TOKEN: 'docs-test-token-0123456789',
  AGENTTRACE_CACHE_DIR: cacheDir,
};
const ids = { incident: '', normal: '', other: '' };
let demoOut = '';
const made: string[] = [];

function substitute(line: string): string {
  return line
    .replace(/sess_incident_<id>|sess_a1b2c3|sess_bad/g, ids.incident)
    .replace(/sess_<run>_0042|sess_b4c5d6|sess_ok|sess_good|sess_nightly/g, ids.normal)
    .replace(/sess_new/g, ids.other)
    .replace(/packages\/<name>/g, 'packages/contract');
}

/**
 * Runs a shell line until it prints `ready`, then stops it with `signal`; returns its exit code and
 * output. The line runs in a process group of its own (npx starts the bin as its child), and the
 * signal goes to that group: what a terminal's Ctrl-C or a service manager's stop does.
 */
function runService(line: string, ready: RegExp, signal: NodeJS.Signals, whileUp?: () => Promise<void>): Promise<{ code: number | null; out: string; sawReady: boolean }> {
  return new Promise((resolve, reject) => {
    // The signal goes to the whole group (bash, npx and the command), so a line that starts with
    // variable assignments (VAR=... npx ...) runs as written.
    const child = spawn('bash', ['-c', line], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const group = (sig: NodeJS.Signals) => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, sig);
      } catch {
        // already gone
      }
    };
    let out = '';
    let sawReady = false;
    const give = setTimeout(() => group('SIGKILL'), 60_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      if (!sawReady && ready.test(out)) {
        sawReady = true;
        // Whatever the check finds, the service is stopped afterwards; the check's own assertions say what failed.
        void (whileUp ? whileUp() : Promise.resolve()).catch(() => undefined).finally(() => group(signal));
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', reject);
    child.on('close', (code, sig) => {
      clearTimeout(give);
      resolve({ code: code ?? (sig ? 128 + (osConstants.signals[sig] ?? 0) : null), out, sawReady });
    });
  });
}

beforeAll(async () => {
  const demo = await runProcess('npm', ['run', 'demo'], { env: { ...env, AGENTTRACE_DEMO_SKIP_SETUP: '1', DEMO_SESSIONS: '20', DEMO_RETRIES: '40' }, cwd: repoRoot, timeoutMs: 300_000 });
  demoOut = demo.stdout;
  expect(demo.code, `npm run demo failed:\n${demo.stdout.slice(-2000)}\n${demo.stderr}`).toBe(0);
  ids.incident = /npx kshark replay (sess_incident_\S+)/.exec(demoOut)?.[1] ?? '';
  const normals = [...demoOut.matchAll(/npx kshark replay (sess_(?!incident)\S+)/g)].map((m) => m[1] ?? '');
  ids.normal = normals[0] ?? '';
  const list = await runProcess('npx', ['--no-install', 'kshark', 'sessions', '--status', 'completed', '--limit', '5', '--json'], { env, cwd: repoRoot });
  const listed = (JSON.parse(list.stdout) as { sessions: { session_id: string }[] }).sessions.map((s) => s.session_id);
  ids.other = listed.find((s) => s !== ids.normal) ?? '';
  expect(ids).toEqual({ incident: expect.stringMatching(/^sess_incident_/), normal: expect.stringMatching(/^sess_/), other: expect.stringMatching(/^sess_/) });
}, 360_000);

afterAll(async () => {
  for (const f of made) rmSync(join(repoRoot, f), { force: true });
  rmSync(cacheDir, { recursive: true, force: true });
  await deleteTopic(topic).catch(() => undefined);
});

describe('commands in the documents', () => {
  const lines = documentedLines();

  it('are all classified here (a new documented command says how it is proven)', () => {
    const unknown = lines.filter(({ line }) => !howOf(line)).map(({ file, line }) => `${file}: ${line}`);
    expect(unknown).toEqual([]);
  });

  it("the demo's \"Next, try\" lines run", async () => {
    const next = (demoOut.split('==> Next, try')[1] ?? '').split('The walkthrough is in')[0] ?? '';
    const commands = next.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('npx '));
    expect(commands.length).toBeGreaterThanOrEqual(5);
    for (const command of commands) {
      const r = await runProcess('bash', ['-c', command], { env, cwd: repoRoot, timeoutMs: 60_000 });
      expect(r.code, `${command}\n${r.stderr}`).toBe(0);
      expect(r.stdout.length, command).toBeGreaterThan(0);
    }
  }, 300_000);

  it("the demo's last line is the incident's URL, and the web view it names serves that session", async () => {
    const tail = (demoOut.split('==> The incident in a browser')[1] ?? '').trim().split('\n');
    const url = tail.at(-1) ?? '';
    expect(url).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:\\d+/#/session/${ids.incident}$`));
    const command = tail.map((l) => l.trim()).find((l) => l.startsWith('npx agenttrace-web')) ?? '';
    expect(command).not.toBe('');
    const port = new URL(url).port;
    let answered: { page: number; session: number; events: number } | undefined;
    const r = await runService(command.replace(/\s+#.*$/, ''), /agenttrace-web listening on/, 'SIGTERM', async () => {
      const page = await fetch(`http://127.0.0.1:${port}/`);
      const doc = await fetch(`http://127.0.0.1:${port}/api/sessions/${ids.incident}`);
      const body = (await doc.json()) as { events?: unknown[] };
      answered = { page: page.status, session: doc.status, events: body.events?.length ?? 0 };
    });
    expect(r.sawReady, r.out).toBe(true);
    expect(answered).toMatchObject({ page: 200, session: 200 });
    expect(answered!.events).toBeGreaterThan(40);
  }, 120_000);

  for (const { file, line } of lines) {
    const how = howOf(line);
    if (!how || 'elsewhere' in how) continue;
    it(`${file}: ${line}`, async () => {
      const command = substitute(line);
      for (const f of ['expected.json', 'expected-steps.json']) if (command.includes(f) && !existsSync(join(repoRoot, f))) made.push(f);
      if ('run' in how) {
        const r = await runProcess('bash', ['-o', 'pipefail', '-c', command], { env: { ...env, SESSION_ID: ids.normal }, cwd: repoRoot, timeoutMs: 120_000 });
        expect(how.run, `${command} exited ${r.code}\n${r.stderr}`).toContain(r.code);
        if (!how.silent) expect(`${r.stdout}${r.stderr}`.length, command).toBeGreaterThan(0);
      } else {
        const signal = how.signal ?? 'SIGTERM';
        const r = await runService(command, how.service, signal);
        expect(r.sawReady, `${command} never printed ${String(how.service)}:\n${r.out}`).toBe(true);
        expect(r.out, `${command} did not stop cleanly`).toMatch(how.stopped);
        expect([0, 128 + osConstants.signals[signal]], `${command} exited ${r.code}:\n${r.out}`).toContain(r.code);
        expect(r.out).not.toMatch(/\n\s+at .+:\d+:\d+/);
      }
    }, 180_000);
  }
});
