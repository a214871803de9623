/**
 * A closed stdout (#13): `agenttrace-dashboard | head -1` stops the consumer as SIGTERM would,
 * with exit 0 and no EPIPE or stack trace (the service's output is small: the drain itself is
 * covered by the kshark, kdiff and kafmirror tests).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { runHeadOne } from '../../../test-support/cli-output.js';
import { createTopic, deleteTopic, repoRoot, stack, uniqueName } from '../../../test-support/stack.js';

const bin = join(repoRoot, 'packages/dashboard-consumer/dist/cli.js');
const topics: string[] = [];

async function args(): Promise<string[]> {
  const topic = uniqueName('dash-output');
  topics.push(topic, `${topic}.dlq`);
  await createTopic(topic, 1);
  return [
    '--brokers', stack.brokers.join(','), '--topic', topic, '--dlq-topic', `${topic}.dlq`, '--alerts-topic', `${topic}.dlq`,
    '--group', uniqueName('dash-output'), '--redis-url', stack.redisUrl, '--redis-prefix', `${uniqueName('dash-output')}:`,
    '--metrics-port', 'off', '--status-interval', '1', '--no-alerts',
  ];
}

afterAll(async () => {
  for (const t of topics) await deleteTopic(t);
}, 60_000);

describe('agenttrace-dashboard output through a pipe (built binary)', () => {
  it('| head -1 stops it as SIGTERM would: exit 0, no EPIPE, no stack trace', async () => {
    const r = await runHeadOne(bin, await args(), process.env, 60_000);
    expect(r.firstLine).toMatch(/^agenttrace-dashboard: /);
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('agenttrace-dashboard: stdout closed, shutting down\n');
  }, 90_000);

});
