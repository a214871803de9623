import { afterAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import type { AgentEvent } from '@agenttrace/contract';
import { Archiver } from '../src/index.js';
import { createTopic, deleteTopic, eventually, makeEvent, produceRaw, stack, uniqueName } from '../../../test-support/stack.js';
import { allCommitted, deletePrefix, downloadPrefix, duck, highWatermarks, s3 } from './helpers.js';

// Scaling out is how a deployment archives more than one process can: more archivers in the same
// consumer group, each owning some partitions. Every join and leave moves partitions while files
// are open or uploading, which is where an exactly-once design would lose or repeat events.
const client = s3();
const topic = uniqueName('arch-scale');
const prefix = uniqueName('arch-scale');
const group = uniqueName('arch-scale-group');
const PARTITIONS = 6;
const PER_WAVE = 600;
const archivers: Archiver[] = [];
let dir: string | undefined;

const produced: AgentEvent[] = [];
async function wave(n: number): Promise<void> {
  const events = Array.from({ length: n }, (_, i) => makeEvent({ session_id: `sess_scale_${i % 40}_${prefix}`, seq: produced.length + i }));
  produced.push(...events);
  await produceRaw(
    topic,
    events.map((e) => ({ key: e.session_id, value: JSON.stringify(e) })),
  );
}

/** An archiver of the group that records which partitions it was given, and how often. */
function member(name: string): { archiver: Archiver; owned: Set<number>; readonly assignments: number } {
  const owned = new Set<number>();
  let assignments = 0;
  const archiver = new Archiver({
    kafka: { brokers: stack.brokers, clientId: name },
    topic,
    dlqTopic: `${topic}.dlq`,
    groupId: group,
    s3: { endpoint: stack.s3Endpoint, bucket: stack.s3Bucket, prefix },
    rollRows: 100,
    rollAgeMs: 700,
    consumer: { 'session.timeout.ms': 10_000 },
    log: (_level, msg, fields) => {
      if (msg !== 'partitions assigned') return;
      assignments += 1;
      for (const p of (fields?.partitions as number[] | undefined) ?? []) owned.add(p);
    },
  });
  archivers.push(archiver);
  return {
    archiver,
    owned,
    get assignments() {
      return assignments;
    },
  };
}

describe('two archivers in one group', () => {
  afterAll(async () => {
    for (const a of archivers) await a.close().catch(() => undefined);
    await deletePrefix(client, prefix);
    await deleteTopic(topic);
    await deleteTopic(`${topic}.dlq`);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('split the partitions, hand them over when one joins and when one leaves, and archive every event once', async () => {
    await createTopic(topic, PARTITIONS);
    await wave(PER_WAVE);

    const a = member('arch-scale-a');
    await a.archiver.start();
    await eventually('the first archiver committed a file', () => a.archiver.stats.commits > 0, 30_000, 50);

    // A second member joins while the first is mid-backlog: the group rebalances and splits the partitions.
    await wave(PER_WAVE);
    const b = member('arch-scale-b');
    await b.archiver.start();
    await eventually('the second archiver was given partitions', () => b.owned.size > 0, 30_000, 50);
    await wave(PER_WAVE);
    await eventually('both archivers committed files', () => b.archiver.stats.commits > 0 && a.archiver.stats.commits > 0, 30_000, 50);
    expect(b.owned.size).toBeLessThan(PARTITIONS);

    // The first leaves: its partitions move to the second, which archives what comes after.
    await a.archiver.close();
    await wave(PER_WAVE);
    const high = await highWatermarks(topic, PARTITIONS);
    const committed = (): Record<number, number> => {
      const merged: Record<number, number> = { ...a.archiver.stats.committed };
      for (const [p, o] of Object.entries(b.archiver.stats.committed)) merged[Number(p)] = Math.max(merged[Number(p)] ?? 0, o);
      return merged;
    };
    await eventually('every partition committed to its end', () => allCommitted(committed(), high), 45_000, 100);
    expect(b.owned.size).toBe(PARTITIONS);
    expect(b.assignments).toBeGreaterThanOrEqual(2);
    await b.archiver.close();

    // An independent reader sees each produced event exactly once, and nothing else.
    const got = await downloadPrefix(client, prefix);
    dir = got.dir;
    const glob = `'${dir}/**/*.parquet'`;
    const [counts] = await duck(`SELECT count(*)::INT AS n, count(DISTINCT event_id)::INT AS d FROM read_parquet(${glob})`);
    expect(counts).toEqual({ n: produced.length, d: produced.length });
    const ids = new Set((await duck(`SELECT event_id FROM read_parquet(${glob})`)).map((r) => r.event_id as string));
    expect(produced.filter((e) => !ids.has(e.event_id))).toEqual([]);
    expect(a.archiver.stats.files).toBeGreaterThan(0);
    expect(b.archiver.stats.files).toBeGreaterThan(0);
  }, 150_000);
});
