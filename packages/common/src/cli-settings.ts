import { resolveSettings, type AgentTraceSettings, type SettingsFlags } from './settings.js';

/**
 * The connection flags every agenttrace command takes, as [flags, description] pairs for a
 * command-line parser's option(), so each command declares them identically.
 */
export const SETTINGS_OPTIONS: ReadonlyArray<readonly [flags: string, description: string]> = [
  ['--brokers <list>', 'Kafka bootstrap servers, comma-separated'],
  ['--topic <name>', 'topic the agent events are on'],
  ['--redis-url <url>', 'Redis the dashboard consumer writes to'],
  ['--redis-prefix <prefix>', 'key prefix of the Redis layout'],
  ['--s3-endpoint <url>', 'S3-compatible endpoint (offloaded payloads, archive)'],
  ['--s3-bucket <name>', 'bucket of offloaded payloads and the archive'],
  ['--s3-prefix <prefix>', 'key prefix in the bucket'],
  ['--config <file>', 'JSON config file'],
];

/** Help text explaining where each shared setting comes from. */
export const SETTINGS_HELP = `Connection settings (precedence: flag > environment > config file > default):
  --brokers       AGENTTRACE_BROKERS        config "brokers"      default 127.0.0.1:9092
  --topic         AGENTTRACE_TOPIC          config "topic"        default agent-events
  --redis-url     AGENTTRACE_REDIS_URL      config "redisUrl"     default redis://127.0.0.1:6379
  --redis-prefix  AGENTTRACE_REDIS_PREFIX   config "redisPrefix"  default agenttrace:
  --s3-endpoint   AGENTTRACE_S3_ENDPOINT    config "s3.endpoint"  default AWS
  --s3-bucket     AGENTTRACE_S3_BUCKET      config "s3.bucket"    default agenttrace
  --s3-prefix     AGENTTRACE_S3_PREFIX      config "s3.prefix"    default none
  --config        AGENTTRACE_CONFIG         a JSON file with the fields above
  Kafka TLS/SASL: AGENTTRACE_KAFKA_SECURITY_PROTOCOL, AGENTTRACE_KAFKA_SASL_*, AGENTTRACE_KAFKA_SSL_* (never printed).`;

const KEYS = ['brokers', 'topic', 'redisUrl', 'redisPrefix', 's3Endpoint', 's3Bucket', 's3Prefix', 'config'] as const;

/** Resolves the shared settings from a parser's parsed flags (other flags are ignored). */
export function settingsFromFlags(flags: Partial<Record<(typeof KEYS)[number], unknown>>, env: NodeJS.ProcessEnv = process.env): AgentTraceSettings {
  const picked: SettingsFlags = {};
  for (const k of KEYS) {
    const v = flags[k];
    if (typeof v === 'string') picked[k] = v;
  }
  return resolveSettings(picked, env);
}
