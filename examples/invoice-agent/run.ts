/**
 * The demo workload: a few hundred invoice-agent sessions plus one incident session, traced to
 * Kafka. Prints a one-line summary and, last, `INCIDENT_SESSION=<id>` for scripts/demo.
 *
 *   npx tsx examples/invoice-agent/run.ts [--sessions 300] [--concurrency 25] [--retries 240] [--topic agent-events]
 */
import './quiet.js';
import { shutdownTracing, type TracerError } from '@agenttrace/tracer';
import { parseArgs } from 'node:util';
import { runIncidentSession, runInvoiceSession } from './agent.js';

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '300' },
    concurrency: { type: 'string', default: '25' },
    retries: { type: 'string', default: '240' },
    topic: { type: 'string', default: process.env.AGENTTRACE_TOPIC ?? 'agent-events' },
  },
});

function int(name: string, v: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    process.stderr.write(`--${name} must be an integer from ${min} to ${max}, got "${v}"\n`);
    process.exit(2);
  }
  return n;
}

const sessions = int('sessions', values.sessions, 0, 100_000);
const concurrency = int('concurrency', values.concurrency, 1, 500);
const retries = int('retries', values.retries, 1, 10_000);
const topic = values.topic;

// Unique per run, so running the demo twice does not merge two runs into one session.
const run = Date.now().toString(36);
const tracerErrors = new Map<string, number>();
const onTracerError = (err: TracerError) => {
  tracerErrors.set(err.code, (tracerErrors.get(err.code) ?? 0) + 1);
  if (tracerErrors.get(err.code) === 1) process.stderr.write(`tracer: ${err.message}\n`);
};

const started = Date.now();
let ok = 0;
let failed = 0;
let next = 0;
const incidentAt = Math.floor(sessions / 2);
const incidentId = `sess_incident_${run}`;
let incident: Promise<void> | undefined;

async function worker(): Promise<void> {
  while (next < sessions) {
    const i = next++;
    if (i === incidentAt) incident = runIncidentSession({ sessionId: incidentId, topic, seed: 42, onTracerError, retries });
    const status = await runInvoiceSession({ sessionId: `sess_${run}_${String(i).padStart(4, '0')}`, topic, seed: i + 1, onTracerError });
    if (status === 'ok') ok++;
    else failed++;
  }
}

await Promise.all(Array.from({ length: Math.min(concurrency, Math.max(1, sessions)) }, worker));
incident ??= runIncidentSession({ sessionId: incidentId, topic, seed: 42, onTracerError, retries });
await incident;
await shutdownTracing();

const secs = ((Date.now() - started) / 1000).toFixed(1);
process.stdout.write(`workload: ${sessions} invoice sessions (${ok} ok, ${failed} with errors) and 1 incident session (${retries} payment retries) on topic ${topic} in ${secs}s\n`);
if (tracerErrors.size > 0) process.stdout.write(`tracer reported: ${[...tracerErrors].map(([k, n]) => `${k} x${n}`).join(', ')}\n`);
process.stdout.write(`INCIDENT_SESSION=${incidentId}\n`);
