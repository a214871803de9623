import { describeTopicConfigs as describeDynamicTopicConfigs, type KafkaConnectionOptions } from '@agenttrace/common';

/**
 * Topic settings worth carrying to the DR copy: they decide how long and how the copy keeps data.
 * Only values set on the topic itself are copied; broker defaults stay the target's own.
 */
export const MIRRORED_CONFIGS = [
  'cleanup.policy',
  'retention.ms',
  'retention.bytes',
  'max.message.bytes',
  'min.compaction.lag.ms',
  'max.compaction.lag.ms',
  'delete.retention.ms',
  'segment.ms',
  'segment.bytes',
  'compression.type',
  'message.timestamp.type',
] as const;

/**
 * Settings set on a topic (among MIRRORED_CONFIGS). librdkafka's admin client in use has no
 * DescribeConfigs, so this goes through the shared protocol admin (@agenttrace/common): TLS with
 * the certificate chain always verified, SASL PLAIN and SCRAM-SHA-256/512, like every other client.
 */
export async function describeTopicConfigs(conn: KafkaConnectionOptions, topic: string, timeoutMs = 10_000): Promise<{ configs: Record<string, string> }> {
  const all = await describeDynamicTopicConfigs(conn, topic, timeoutMs);
  const configs: Record<string, string> = {};
  for (const name of MIRRORED_CONFIGS) if (all[name] !== undefined) configs[name] = all[name];
  return { configs };
}
