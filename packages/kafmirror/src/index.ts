export { Replicator } from './replicator.js';
export type { ReplicatorStats } from './replicator.js';
export { resolveReplicatorOptions, resolveFailoverOptions, REPLICATOR_DEFAULTS } from './options.js';
export type { ReplicatorOptions, ResolvedReplicatorOptions, FailoverOptions, NamingPolicy, LogFn, LogLevel } from './options.js';
export { KafmirrorError, EXIT_CODES, exitCodeFor } from './errors.js';
export type { KafmirrorErrorCode } from './errors.js';
export { failover, readCheckpoints } from './failover.js';
export type { FailoverResult } from './failover.js';
export { resolveCluster, loadKafmirrorConfig } from './clusters.js';
export type { KafmirrorConfigFile, ResolvedCluster } from './clusters.js';
export {
  HEADER_SOURCE_CLUSTER,
  HEADER_SOURCE_TOPIC,
  HEADER_SOURCE_PARTITION,
  HEADER_SOURCE_OFFSET,
  INTERNAL_TOPIC_PREFIX,
  targetTopicName,
  isMirrorable,
  cameFrom,
  withProvenance,
  readProvenance,
} from './provenance.js';
export { OffsetMap } from './offset-map.js';
export { LagAlarm, timeLagMs, postWebhook, describeUrl } from './lag.js';
export type { LagSnapshot, PartitionLag, AlarmTransition } from './lag.js';
export { MirrorMetrics } from './metrics.js';
export { describeTopicConfigs, encodeDescribeConfigs, decodeDescribeConfigs, MIRRORED_CONFIGS } from './topic-configs.js';
export { offsetKey, checkpointKey, decodeOffset, decodeCheckpoint } from './state-topics.js';
export type { StoredOffset, Checkpoint } from './state-topics.js';
export type { Cluster, Role } from './kafka-io.js';
