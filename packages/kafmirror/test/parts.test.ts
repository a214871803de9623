import { afterAll, describe, expect, it } from 'vitest';
import { createTopic, deleteTopic, kafkaConn, stack, uniqueName } from '../../../test-support/stack.js';
import { MirrorMetrics, resolveReplicatorOptions, withProvenance, type LogLevel } from '../src/index.js';
import { Checkpointer } from '../src/checkpointer.js';
import { ClusterAdmin, type Cluster } from '../src/kafka-io.js';
import { LagSampler } from '../src/lag-sampler.js';
import { PartitionTable } from '../src/partitions.js';
import { latestCheckpoints, readStateTopic } from '../src/state-topics.js';
import { commitGroupOffsets, produceExact } from './helpers.js';

// The Replicator's parts, each driven on its own through its small interface against the shared
// stack (one cluster plays both roles: the parts only care which client they are handed).
const cluster = (role: 'source' | 'target'): Cluster => ({ role, alias: role === 'source' ? 'src' : 'dst', conn: kafkaConn() });
const topics: string[] = [];
const admins: ClusterAdmin[] = [];

afterAll(async () => {
  for (const a of admins) a.close();
  await Promise.all(topics.map((t) => deleteTopic(t)));
});

function logger(): { log: (level: LogLevel, message: string) => void; lines: Array<[LogLevel, string]> } {
  const lines: Array<[LogLevel, string]> = [];
  return { log: (level, message) => lines.push([level, message]), lines };
}

describe('kafmirror parts', () => {
  it('LagSampler: reads the age of an unknown backlog from its first record, alerts, and recovers once it is mirrored', async () => {
    const topic = uniqueName('km-lag');
    topics.push(topic);
    await createTopic(topic, 1);
    const producedAt = Date.now() - 60_000;
    await produceExact(topic, [0, 1, 2].map((i) => ({ key: null, value: `v${i}`, partition: 0, timestamp: producedAt + i })), stack.brokers);

    const { log, lines } = logger();
    const options = resolveReplicatorOptions({ source: kafkaConn(), target: kafkaConn(), sourceAlias: 'src', targetAlias: 'dst', naming: 'prefix', topics: [topic], lagThresholdMs: 10_000, log });
    const sourceAdmin = new ClusterAdmin(cluster('source'));
    admins.push(sourceAdmin);
    const table = new PartitionTable();
    // Never mirrored: no last timestamp, so only the peek at the head can tell the backlog's age.
    const st = table.add(topic, 0, `dst.${topic}`, 0, undefined, 'id');
    const sampler = new LagSampler({ options, source: cluster('source'), sourceAdmin, partitions: table, metrics: new MirrorMetrics() });
    try {
      expect(sampler.lag()).toBeUndefined();
      await sampler.sampleEnds();
      sampler.sampleLag();
      const behind = sampler.lag()!;
      expect(behind.totalRecords).toBe(3);
      expect(behind.partitions).toEqual([{ topic, partition: 0, records: 3, ms: expect.any(Number) as number }]);
      expect(behind.maxMs).toBeGreaterThanOrEqual(60_000);
      expect(behind.alerting).toBe(true);
      expect(lines.filter(([l, m]) => l === 'warn' && m.includes('above the threshold'))).toHaveLength(1);

      // The loop commits everything: the next sample is caught up and the alarm recovers once.
      st.next = 3;
      st.lastTs = producedAt + 2;
      await sampler.sampleEnds();
      sampler.sampleLag();
      sampler.sampleLag();
      expect(sampler.lag()).toMatchObject({ totalRecords: 0, maxMs: 0, alerting: false });
      expect(lines.filter(([l, m]) => l === 'info' && m.includes('lag recovered'))).toHaveLength(1);
    } finally {
      await sampler.close();
    }
  });

  it('Checkpointer: translates a group offset the in-memory map does not cover from the copy, and writes nothing while not running', async () => {
    const sourceTopic = uniqueName('km-cp-src');
    const targetTopic = uniqueName('km-cp-dst');
    const checkpointsTopic = uniqueName('km-cp-checkpoints');
    topics.push(sourceTopic, targetTopic, checkpointsTopic);
    await Promise.all([createTopic(sourceTopic, 1), createTopic(targetTopic, 1), createTopic(checkpointsTopic, 1)]);
    // Copies of source offsets 10..14 at target offsets 0..4, as a run before a restart left them.
    await produceExact(
      targetTopic,
      [10, 11, 12, 13, 14].map((offset) => ({ key: null, value: `v${offset}`, partition: 0, timestamp: Date.now(), headers: withProvenance(undefined, 'src', sourceTopic, 0, offset) })),
      stack.brokers,
    );
    const group = uniqueName('km-cp-group');
    await commitGroupOffsets(group, sourceTopic, new Map([[0, 12]]), stack.brokers);

    const { log, lines } = logger();
    const options = resolveReplicatorOptions({ source: kafkaConn(), target: kafkaConn(), sourceAlias: 'src', targetAlias: 'dst', naming: 'prefix', topics: [sourceTopic], groups: [group], checkpointsTopic, log });
    const sourceAdmin = new ClusterAdmin(cluster('source'));
    admins.push(sourceAdmin);
    const table = new PartitionTable();
    // This run starts at 15: its offset map cannot translate 12.
    table.add(sourceTopic, 0, targetTopic, 15, undefined, 'id');
    let running = false;
    const checkpointer = new Checkpointer({ options, target: cluster('target'), sourceAdmin, partitions: table, metrics: new MirrorMetrics(), isRunning: () => running });
    try {
      await checkpointer.connect();
      await checkpointer.checkpointNow();
      expect(await readStateTopic(cluster('target'), checkpointsTopic)).toHaveLength(0);

      running = true;
      await checkpointer.checkpointNow();
      const written = [...latestCheckpoints(await readStateTopic(cluster('target'), checkpointsTopic)).values()];
      expect(written).toEqual([expect.objectContaining({ group, sourceTopic, targetTopic, partition: 0, sourceOffset: 12, targetOffset: 2 })]);
      expect(lines.filter(([l]) => l === 'warn')).toEqual([]);
    } finally {
      await checkpointer.close();
    }
  });
});
