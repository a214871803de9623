/**
 * The Redis layout the dashboard consumer writes and every reader (kshark, kdiff, live views)
 * reads. One definition so writer and readers cannot drift apart.
 */
export const DEFAULT_REDIS_PREFIX = 'agenttrace:';

export interface RedisKeys {
  /** LIST of the session's event JSON texts, in Kafka offset order. */
  events(sessionId: string): string;
  /** HASH of session metadata (see SessionMetaFields). */
  meta(sessionId: string): string;
  /** HASH tool name -> number of tool calls. */
  tools(sessionId: string): string;
  /** HASH of where the session lives in Kafka: topic, partition, first_offset, last_offset. */
  kafkaIndex(sessionId: string): string;
  /** ZSET session id -> last event time (ms). */
  byActivity(): string;
  /** ZSET session id -> total cost (USD). */
  byCost(): string;
  /** ZSET session id -> first event time (ms). */
  byStart(): string;
  /** ZSET session id -> number of events. */
  byEvents(): string;
  /** ZSET session id -> number of errors. */
  byErrors(): string;
  /** ZSET session id -> number of tool calls. */
  byToolCalls(): string;
  /** ZSET session id -> the most calls of one tool (max over the session's tools hash). */
  byMaxToolCalls(): string;
  /** ZSET session id -> last event time minus first event time (ms). */
  byDuration(): string;
  /** ZSET session id -> calls of this tool, for every session that called it. */
  toolSessions(tool: string): string;
  /** SET of tool names seen (the toolSessions indexes that exist). */
  toolNames(): string;
  /** ZSET session id -> errors with this code (the error's `code`), for every session that had one. */
  errorCodeSessions(code: string): string;
  /** SET of error codes seen. */
  errorCodes(): string;
  /** SET of the session ids in this state (active, completed or error). */
  byStatus(status: string): string;
  /** ZSET session id -> last event time (ms), per agent. */
  byAgent(agentId: string): string;
  /** SET of agent ids seen. */
  agents(): string;
  /** HASH partition -> next offset to consume, per consumer group and topic. */
  offsets(group: string, topic: string): string;
  /**
   * HASH naming what the offsets of the same group and topic belong to: cluster_id, topic_id
   * (Kafka's ids) and stamped_at. Offsets are only meaningful on the cluster and the incarnation
   * of the topic they were read from.
   */
  offsetsOwner(group: string, topic: string): string;
  /** SET of the offsets(group, topic) keys written, so readers find them without a SCAN. */
  offsetKeys(): string;
  /** SET of "<rule>|<session>" alerts already fired (dedup). */
  alertsFired(): string;
  /** LIST of recent alert JSON texts, newest first. */
  alertsRecent(): string;
  /** Pub/sub channel announcing changed sessions: message is JSON {session_id, count, last_ts}. */
  updatesChannel(): string;
  /** Pub/sub channel for one session's changes (same message). */
  sessionChannel(sessionId: string): string;
}

export function redisKeys(prefix: string = DEFAULT_REDIS_PREFIX): RedisKeys {
  return {
    events: (s) => `${prefix}session:{${s}}:events`,
    meta: (s) => `${prefix}session:{${s}}:meta`,
    tools: (s) => `${prefix}session:{${s}}:tools`,
    kafkaIndex: (s) => `${prefix}session:{${s}}:kafka`,
    byActivity: () => `${prefix}sessions:by-activity`,
    byCost: () => `${prefix}sessions:by-cost`,
    byStart: () => `${prefix}sessions:by-start`,
    byEvents: () => `${prefix}sessions:by-events`,
    byErrors: () => `${prefix}sessions:by-errors`,
    byToolCalls: () => `${prefix}sessions:by-tool-calls`,
    byMaxToolCalls: () => `${prefix}sessions:by-max-tool-calls`,
    byDuration: () => `${prefix}sessions:by-duration`,
    toolSessions: (t) => `${prefix}tool:${t}:sessions`,
    toolNames: () => `${prefix}tools`,
    errorCodeSessions: (c) => `${prefix}error-code:${c}:sessions`,
    errorCodes: () => `${prefix}error-codes`,
    byStatus: (st) => `${prefix}sessions:status:${st}`,
    byAgent: (a) => `${prefix}agent:${a}:sessions`,
    agents: () => `${prefix}agents`,
    offsets: (g, t) => `${prefix}offsets:${g}:${t}`,
    offsetsOwner: (g, t) => `${prefix}offsets-owner:${g}:${t}`,
    offsetKeys: () => `${prefix}offset-keys`,
    alertsFired: () => `${prefix}alerts:fired`,
    alertsRecent: () => `${prefix}alerts:recent`,
    updatesChannel: () => `${prefix}updates`,
    sessionChannel: (s) => `${prefix}updates:session:${s}`,
  };
}

/** Fields of the session metadata hash. Numbers are stored as decimal strings. */
export interface SessionMeta {
  session_id: string;
  agent_id: string;
  first_ts: string;
  last_ts: string;
  event_count: number;
  status: 'active' | 'completed' | 'error';
  current_step: string;
  input_tokens: number;
  output_tokens: number;
  cost_usd: number;
  error_count: number;
  tool_calls: number;
}
