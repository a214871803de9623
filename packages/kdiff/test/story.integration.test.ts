/**
 * kdiff tells the story (#16): the demo's incident session and a normal session, traced by the
 * demo's own agent code (examples/invoice-agent) into the real Kafka, compared by the built
 * binary. The first divergence is structural, the decision and the retry loop are named, and the
 * customer id the two runs differ in is listed after them as data.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { runIncidentSession, runInvoiceSession } from '../../../examples/invoice-agent/agent.js';
import { createTopic, deleteTopic, repoRoot, runNode, stack, uniqueName } from '../../../test-support/stack.js';

const CLI = join(repoRoot, 'packages', 'kdiff', 'bin', 'kdiff.js');
const topic = uniqueName('kdiff-story');
const run = uniqueName('s').replace(/[^a-z0-9_]/gi, '_');
const incident = `sess_incident_${run}`;
const normal = `sess_normal_${run}`;
const RETRIES = 60;
const tracerErrors: unknown[] = [];
// A unique empty Redis prefix: the sessions are read from their Kafka partition.
const conn = ['--source', 'kafka', '--topic', topic, '--brokers', stack.brokers.join(','), '--redis-url', stack.redisUrl, '--redis-prefix', `${uniqueName('kdiff')}:`, '--s3-endpoint', stack.s3Endpoint, '--s3-bucket', stack.s3Bucket];

const kdiff = (...args: string[]) => runNode(CLI, ['compare', incident, normal, ...conn, ...args], { env: { ...process.env, NO_COLOR: '1' }, timeoutMs: 45_000 });

beforeAll(async () => {
  await createTopic(topic, 2);
  const onTracerError = (err: unknown) => tracerErrors.push(err);
  // Seed 2 gives a customer with notifications off: no e-mail step, a plain successful run.
  await Promise.all([runIncidentSession({ sessionId: incident, topic, seed: 42, onTracerError, retries: RETRIES }), runInvoiceSession({ sessionId: normal, topic, seed: 2, onTracerError })]);
  expect(tracerErrors).toEqual([]);
}, 60_000);

afterAll(async () => {
  await deleteTopic(topic);
});

describe('kdiff compare <incident> <normal> (built binary, the demo agent via Kafka)', () => {
  it('starts with a structural difference, names the decision and the loop, then lists the data', async () => {
    const r = await kdiff('--show-divergence');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(1);
    const out = r.stdout;
    const first = out.split('\n').find((l) => l.startsWith('First divergence'))!;
    // The two runs look up different customers first; that is data, not where they parted ways.
    expect(first).not.toContain('A#2 / B#2');
    expect(out).toMatch(/decision: charge_card_on_file vs (standard_terms|apply_loyalty_discount)/);
    expect(out).toContain(`tool stripe.create_payment called ${RETRIES} times in a row in A (${RETRIES} failed); 0 times in B`);
    expect(out).toContain('outcome: error vs ok');
    const story = out.indexOf('What changed (');
    const data = out.indexOf('Data differences (per-run values, not structural)');
    expect(story).toBeGreaterThan(out.indexOf('First divergence'));
    expect(data).toBeGreaterThan(story);
    expect(out.slice(data)).toMatch(/payload\.input\.customer_id: "cus_incident42" → "cus_\w+"/);
    expect(out.slice(story, data)).not.toContain('cus_incident42');
  });

  it('keeps --json whole, with the story and the structural flags added', async () => {
    const r = await kdiff('--json');
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j.format).toBe('kdiff.compare.v1');
    expect(j.entries).toHaveLength(j.summary.same + j.summary.changed + j.summary.only_in_a + j.summary.only_in_b);
    expect(j.divergence.structural).toBe(true);
    expect(typeof j.divergence.text).toBe('string');
    const texts: string[] = j.story.map((s: { text: string }) => s.text);
    const decision = texts.findIndex((t) => t.startsWith('decision: charge_card_on_file vs '));
    const loop = texts.findIndex((t) => t.startsWith(`tool stripe.create_payment called ${RETRIES} times`));
    expect(decision).toBeGreaterThanOrEqual(0);
    expect(loop).toBe(decision + 1);
    expect(j.story[loop].loop).toMatchObject({ side: 'a', event_type: 'tool_call', label: 'stripe.create_payment', calls: RETRIES, failed: RETRIES, other_calls: 0 });
    expect(j.summary.structural).toBe(j.story.length);
    // The customer lookup is aligned, changed, and flagged as data.
    const lookup = j.entries.find((e: { a: { label?: string } | null }) => e.a?.label === 'crm.get_customer');
    expect(lookup).toMatchObject({ op: 'changed', structural: false });
  });

  it('cuts long values by default and prints them whole with --full', async () => {
    const cut = await kdiff('--show-divergence');
    const whole = await kdiff('--show-divergence', '--full');
    expect(whole.code).toBe(1);
    // The incident's decision reasoning is longer than the default value width (53 columns at 160).
    const reasoning = 'Customer has a valid card on file and an overdue balance';
    expect(cut.stdout).toContain('--full prints all');
    expect(cut.stdout).not.toContain(`context.reasoning: "${reasoning}"`);
    expect(whole.stdout).toContain(`context.reasoning: "${reasoning}"`);
    expect(whole.stdout).not.toContain('--full prints all');
  });
});
