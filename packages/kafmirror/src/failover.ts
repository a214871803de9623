import Kafka from '@confluentinc/kafka-javascript';
import { errorMessage } from '@agenttrace/common';
import { KafmirrorError } from './errors.js';
import { ClusterAdmin, clientConfig, clusterError, connectClient, describeCluster, disconnect, type Cluster } from './kafka-io.js';
import { resolveFailoverOptions, type FailoverOptions } from './options.js';
import { latestCheckpoints, readStateTopic, type Checkpoint } from './state-topics.js';

export interface FailoverResult {
  group: string;
  /** The offsets committed (or, with dryRun, that would be) on the target. */
  offsets: Checkpoint[];
  committed: boolean;
}

/** The latest translated offsets of each group, from the checkpoints topic on the target. */
export async function readCheckpoints(target: Cluster, checkpointsTopic: string, groups: string[]): Promise<Map<string, Checkpoint[]>> {
  const latest = latestCheckpoints(await readStateTopic(target, checkpointsTopic));
  const out = new Map<string, Checkpoint[]>(groups.map((g) => [g, []]));
  for (const c of latest.values()) out.get(c.group)?.push(c);
  for (const list of out.values()) list.sort((a, b) => a.targetTopic.localeCompare(b.targetTopic) || a.partition - b.partition);
  return out;
}

/**
 * Commits the translated offsets of consumer groups on the target cluster, so their consumers,
 * pointed at the target, resume where they stopped on the source. The group must have no active
 * members on the target (Kafka only accepts such commits for an empty group).
 */
export async function failover(options: FailoverOptions & { targetAlias?: string }): Promise<FailoverResult[]> {
  const o = resolveFailoverOptions(options);
  const target: Cluster = { role: 'target', alias: options.targetAlias ?? 'target', conn: { clientId: 'kafmirror', ...o.target } };
  const admin = new ClusterAdmin(target);
  const results: FailoverResult[] = [];
  try {
    const topics = await admin.listTopics();
    if (!topics.includes(o.checkpointsTopic)) {
      throw new KafmirrorError('NO_CHECKPOINTS', `${describeCluster(target)} has no checkpoints topic "${o.checkpointsTopic}". Was kafmirror replicate run with --groups (and the same --source alias "${o.sourceAlias}")?`);
    }
    const byGroup = await readCheckpoints(target, o.checkpointsTopic, o.groups);
    for (const group of o.groups) {
      const offsets = byGroup.get(group) ?? [];
      if (offsets.length === 0) {
        throw new KafmirrorError('NO_CHECKPOINTS', `no checkpoints for group "${group}" in ${o.checkpointsTopic} on ${describeCluster(target)}. Name it in kafmirror replicate --groups and let it run one checkpoint interval.`);
      }
      if (o.dryRun) {
        results.push({ group, offsets, committed: false });
        continue;
      }
      const members = await admin.groupMembers(group);
      if (members > 0) {
        throw new KafmirrorError('GROUP_ACTIVE', `group "${group}" has ${members} active member(s) on ${describeCluster(target)}; stop its consumers there first (Kafka only accepts offsets for an empty group).`);
      }
      await commitGroupOffsets(target, group, offsets);
      results.push({ group, offsets, committed: true });
    }
  } finally {
    admin.close();
  }
  return results;
}

async function commitGroupOffsets(target: Cluster, group: string, offsets: Checkpoint[]): Promise<void> {
  const consumer = new Kafka.KafkaConsumer({ ...clientConfig(target, 'failover'), 'group.id': group, 'enable.auto.commit': false }, {});
  await connectClient(consumer, target, `committing offsets of group ${group}`);
  try {
    // A commit outside any group generation: accepted because the group is empty.
    consumer.commitSync(offsets.map((c) => ({ topic: c.targetTopic, partition: c.partition, offset: c.targetOffset })));
  } catch (err) {
    const e = clusterError(target, `committing offsets of group ${group}`, err);
    throw new KafmirrorError(e.code === 'AUTH_FAILED' ? 'AUTH_FAILED' : 'COMMIT_FAILED', `${e.message} (${errorMessage(err)})`, { cause: err });
  } finally {
    await disconnect(consumer);
  }
}
