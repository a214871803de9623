import type { MessageHeader } from '@confluentinc/kafka-javascript';
import type { NamingPolicy } from './options.js';

/** Headers kafmirror adds to every mirrored record, naming where it came from. */
export const HEADER_SOURCE_CLUSTER = 'kafmirror-source-cluster';
export const HEADER_SOURCE_TOPIC = 'kafmirror-source-topic';
export const HEADER_SOURCE_PARTITION = 'kafmirror-source-partition';
export const HEADER_SOURCE_OFFSET = 'kafmirror-source-offset';

/** Prefix of kafmirror's own bookkeeping topics; they are never mirrored. */
export const INTERNAL_TOPIC_PREFIX = 'kafmirror.';

/** The target topic for a source topic under a naming policy. */
export function targetTopicName(sourceTopic: string, policy: NamingPolicy, sourceAlias: string): string {
  return policy === 'prefix' ? `${sourceAlias}.${sourceTopic}` : sourceTopic;
}

/**
 * Whether a source topic may be mirrored at all: Kafka's internal topics and kafmirror's own are
 * not, and neither are topics that are themselves copies of the target's topics under the prefix
 * policy (mirroring those back would close a loop).
 */
export function isMirrorable(topic: string, targetAlias: string): boolean {
  return !topic.startsWith('__') && !topic.startsWith(INTERNAL_TOPIC_PREFIX) && !topic.startsWith(`${targetAlias}.`);
}

const text = (v: string | Buffer): string => (Buffer.isBuffer(v) ? v.toString('utf8') : v);

/**
 * True when the record already passed through the target cluster: one of its provenance headers
 * names the target as a source. Records keep the provenance of every hop, so this also stops
 * longer cycles (a → b → c → a).
 */
export function cameFrom(headers: MessageHeader[] | undefined, clusterAlias: string): boolean {
  if (!headers) return false;
  for (const h of headers) {
    const v = h[HEADER_SOURCE_CLUSTER];
    if (v !== undefined && text(v) === clusterAlias) return true;
  }
  return false;
}

/** The record's headers, unchanged and in order, followed by this hop's provenance. */
export function withProvenance(headers: MessageHeader[] | undefined, sourceAlias: string, topic: string, partition: number, offset: number): MessageHeader[] {
  const out = headers ? headers.slice() : [];
  out.push(
    { [HEADER_SOURCE_CLUSTER]: sourceAlias },
    { [HEADER_SOURCE_TOPIC]: topic },
    { [HEADER_SOURCE_PARTITION]: String(partition) },
    { [HEADER_SOURCE_OFFSET]: String(offset) },
  );
  return out;
}

/** Reads the last hop's provenance from a mirrored record's headers. */
export function readProvenance(headers: MessageHeader[] | undefined): { cluster: string; topic: string; partition: number; offset: number } | undefined {
  if (!headers) return undefined;
  let cluster: string | undefined;
  let topic: string | undefined;
  let partition: number | undefined;
  let offset: number | undefined;
  for (const h of headers) {
    for (const [k, v] of Object.entries(h)) {
      if (k === HEADER_SOURCE_CLUSTER) cluster = text(v);
      else if (k === HEADER_SOURCE_TOPIC) topic = text(v);
      else if (k === HEADER_SOURCE_PARTITION) partition = Number(text(v));
      else if (k === HEADER_SOURCE_OFFSET) offset = Number(text(v));
    }
  }
  if (cluster === undefined || topic === undefined || partition === undefined || offset === undefined) return undefined;
  return { cluster, topic, partition, offset };
}
