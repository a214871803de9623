import { readFileSync } from 'node:fs';
import { DEFAULT_TOPIC } from '@agenttrace/contract';
import { AgentTraceError } from './errors.js';
import { kafkaConnectionFromEnv, validateKafkaConnection, type KafkaConnectionOptions } from './kafka.js';
import { DEFAULT_REDIS_PREFIX } from './redis-keys.js';
import { s3OptionsFromEnv, type S3Options } from './s3.js';

/**
 * The settings every agenttrace command shares. One precedence everywhere:
 * command-line flag > environment variable > config file > default.
 */
export interface AgentTraceSettings {
  kafka: KafkaConnectionOptions;
  topic: string;
  redisUrl: string;
  redisPrefix: string;
  s3: S3Options;
}

/** What a command-line parser collected (undefined = flag not given). */
export interface SettingsFlags {
  brokers?: string;
  topic?: string;
  redisUrl?: string;
  redisPrefix?: string;
  s3Endpoint?: string;
  s3Bucket?: string;
  s3Prefix?: string;
  config?: string;
}

export const SETTINGS_DEFAULTS = {
  brokers: ['127.0.0.1:9092'],
  topic: DEFAULT_TOPIC,
  redisUrl: 'redis://127.0.0.1:6379',
  redisPrefix: DEFAULT_REDIS_PREFIX,
  s3Bucket: 'agenttrace',
  s3Prefix: '',
} as const;

/** The shape of an agenttrace config file (JSON). Every field is optional. */
export interface ConfigFile {
  brokers?: string[] | string;
  topic?: string;
  redisUrl?: string;
  redisPrefix?: string;
  s3?: Partial<S3Options>;
  kafka?: Partial<Omit<KafkaConnectionOptions, 'brokers'>>;
  [key: string]: unknown;
}

export class ConfigError extends AgentTraceError {}

/** Reads a JSON config file; a missing or malformed file is a clear error naming the file. */
export function loadConfigFile(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError('CONFIG_UNREADABLE', `cannot read config file ${path}${code === 'ENOENT' ? ': no such file' : `: ${code ?? 'error'}`}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError('CONFIG_MALFORMED', `config file ${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError('CONFIG_MALFORMED', `config file ${path} must hold a JSON object`);
  }
  const cfg = parsed as ConfigFile;
  for (const k of ['topic', 'redisUrl', 'redisPrefix'] as const) {
    if (cfg[k] !== undefined && typeof cfg[k] !== 'string') throw new ConfigError('CONFIG_MALFORMED', `config file ${path}: "${k}" must be a string`);
  }
  if (cfg.brokers !== undefined && typeof cfg.brokers !== 'string' && !Array.isArray(cfg.brokers)) {
    throw new ConfigError('CONFIG_MALFORMED', `config file ${path}: "brokers" must be a list of "host:port" strings`);
  }
  if (cfg.s3 !== undefined && (typeof cfg.s3 !== 'object' || cfg.s3 === null)) throw new ConfigError('CONFIG_MALFORMED', `config file ${path}: "s3" must be an object`);
  if (cfg.kafka !== undefined && (typeof cfg.kafka !== 'object' || cfg.kafka === null)) throw new ConfigError('CONFIG_MALFORMED', `config file ${path}: "kafka" must be an object`);
  return cfg;
}

const list = (v: string | string[]): string[] => (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter(Boolean);

/** Resolves the shared settings from flags, environment, an optional config file and defaults. */
export function resolveSettings(flags: SettingsFlags = {}, env: NodeJS.ProcessEnv = process.env): AgentTraceSettings {
  const configPath = flags.config ?? env.AGENTTRACE_CONFIG;
  const file: ConfigFile = configPath ? loadConfigFile(configPath) : {};
  const kenv = kafkaConnectionFromEnv(env);
  const s3env = s3OptionsFromEnv(env);
  const brokers = flags.brokers ? list(flags.brokers) : (kenv.brokers ?? (file.brokers ? list(file.brokers) : [...SETTINGS_DEFAULTS.brokers]));
  const kafka: Partial<KafkaConnectionOptions> = { ...(file.kafka ?? {}), brokers };
  if (kenv.securityProtocol) kafka.securityProtocol = kenv.securityProtocol;
  if (kenv.sasl) kafka.sasl = kenv.sasl;
  if (kenv.ssl) kafka.ssl = { ...(file.kafka?.ssl ?? {}), ...kenv.ssl };
  const s3: S3Options = {
    bucket: flags.s3Bucket ?? s3env.bucket ?? file.s3?.bucket ?? SETTINGS_DEFAULTS.s3Bucket,
    prefix: flags.s3Prefix ?? s3env.prefix ?? file.s3?.prefix ?? SETTINGS_DEFAULTS.s3Prefix,
  };
  const endpoint = flags.s3Endpoint ?? s3env.endpoint ?? file.s3?.endpoint;
  if (endpoint) s3.endpoint = endpoint;
  const region = s3env.region ?? file.s3?.region;
  if (region) s3.region = region;
  if (file.s3?.credentials) s3.credentials = file.s3.credentials;
  return {
    kafka: validateKafkaConnection(kafka, flags.brokers ? '--brokers' : kenv.brokers ? 'AGENTTRACE_BROKERS' : 'brokers'),
    topic: flags.topic ?? env.AGENTTRACE_TOPIC ?? file.topic ?? SETTINGS_DEFAULTS.topic,
    redisUrl: flags.redisUrl ?? env.AGENTTRACE_REDIS_URL ?? file.redisUrl ?? SETTINGS_DEFAULTS.redisUrl,
    redisPrefix: flags.redisPrefix ?? env.AGENTTRACE_REDIS_PREFIX ?? file.redisPrefix ?? SETTINGS_DEFAULTS.redisPrefix,
    s3,
  };
}

/** A Redis URL safe to print (password removed). */
export function describeRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return `Redis at ${u.toString()}`;
  } catch {
    return 'Redis (unparseable URL)';
  }
}
