import { errorMessage } from './errors.js';
import { parseCount, parseDurationMs, type NumberRule } from './cli-parsers.js';
import { resolveSettings, type AgentTraceSettings, type SettingsFlags } from './settings.js';

/** The name under which a command-line parser hands back each shared flag (commander's camelCase). */
export type SettingsFlagName = keyof SettingsFlags;

interface SettingsFlagSpec {
  name: SettingsFlagName;
  flags: string;
  description: string;
  env: string;
  config: string;
  defaultText: string;
}

/**
 * The connection flags every agenttrace command takes, declared once: how each is spelled, what
 * it is, and where else its value can come from (the help table below is made from the same rows).
 */
const SETTINGS_FLAGS: readonly SettingsFlagSpec[] = [
  { name: 'brokers', flags: '--brokers <list>', description: 'Kafka bootstrap servers, comma-separated', env: 'AGENTTRACE_BROKERS', config: 'config "brokers"', defaultText: 'default 127.0.0.1:9092' },
  { name: 'topic', flags: '--topic <name>', description: 'topic the agent events are on', env: 'AGENTTRACE_TOPIC', config: 'config "topic"', defaultText: 'default agent-events' },
  { name: 'redisUrl', flags: '--redis-url <url>', description: 'Redis the dashboard consumer writes to', env: 'AGENTTRACE_REDIS_URL', config: 'config "redisUrl"', defaultText: 'default redis://127.0.0.1:6379' },
  { name: 'redisPrefix', flags: '--redis-prefix <prefix>', description: 'key prefix of the Redis layout', env: 'AGENTTRACE_REDIS_PREFIX', config: 'config "redisPrefix"', defaultText: 'default agenttrace:' },
  { name: 's3Endpoint', flags: '--s3-endpoint <url>', description: 'S3-compatible endpoint (offloaded payloads, archive)', env: 'AGENTTRACE_S3_ENDPOINT', config: 'config "s3.endpoint"', defaultText: 'default AWS' },
  { name: 's3Bucket', flags: '--s3-bucket <name>', description: 'bucket of offloaded payloads and the archive', env: 'AGENTTRACE_S3_BUCKET', config: 'config "s3.bucket"', defaultText: 'default agenttrace' },
  { name: 's3Prefix', flags: '--s3-prefix <prefix>', description: 'key prefix in the bucket', env: 'AGENTTRACE_S3_PREFIX', config: 'config "s3.prefix"', defaultText: 'default none' },
  { name: 'config', flags: '--config <file>', description: 'JSON config file', env: 'AGENTTRACE_CONFIG', config: 'a JSON file with the fields above', defaultText: '' },
];

/** Every shared flag, in the order commands list them. */
export const SETTINGS_FLAG_NAMES: readonly SettingsFlagName[] = SETTINGS_FLAGS.map((f) => f.name);

/**
 * The shared flags as [flags, description] pairs for a parser's option(). Prefer
 * addSettingsOptions, which also lets a command pick a subset and say what it does with a flag.
 */
export const SETTINGS_OPTIONS: ReadonlyArray<readonly [flags: string, description: string]> = SETTINGS_FLAGS.map((f) => [f.flags, f.description] as const);

/** Which shared flags a command takes, and its own wording where it uses one for something specific. */
export interface SettingsOptionsChoice {
  /** The flags this command takes (default: all of them), listed in the shared order whatever the order here. */
  only?: readonly SettingsFlagName[];
  /** A command's own help line for a flag, e.g. which section of the config file it reads. */
  describe?: Partial<Record<SettingsFlagName, string>>;
}

/**
 * The part of a command-line parser's command this needs: commander's `Command` has it. Typed by
 * shape so that common, loaded by agent processes through the tracer, does not load commander.
 */
export interface OptionTarget {
  option(flags: string, description?: string): unknown;
}

function chosen(choice: SettingsOptionsChoice): SettingsFlagSpec[] {
  const only = choice.only;
  if (only !== undefined) {
    const unknown = only.filter((n) => !SETTINGS_FLAG_NAMES.includes(n));
    if (unknown.length > 0) throw new TypeError(`not a shared flag: ${unknown.join(', ')}`);
  }
  return SETTINGS_FLAGS.filter((f) => only === undefined || only.includes(f.name));
}

/** Declares the shared connection flags on a command (all of them, or `choice.only`); returns the command. */
export function addSettingsOptions<C extends OptionTarget>(cmd: C, choice: SettingsOptionsChoice = {}): C {
  for (const f of chosen(choice)) cmd.option(f.flags, choice.describe?.[f.name] ?? f.description);
  return cmd;
}

const KAFKA_SECURITY_LINE = '  Kafka TLS/SASL: AGENTTRACE_KAFKA_SECURITY_PROTOCOL, AGENTTRACE_KAFKA_SASL_*, AGENTTRACE_KAFKA_SSL_* (never printed).';

/**
 * Help text saying where each shared setting comes from, for the flags a command takes (all by
 * default). The Kafka security settings are environment-only (never a flag, so never in a shell's
 * history or a process list); every command that talks to Kafka lists them.
 */
export function settingsHelp(choice: Pick<SettingsOptionsChoice, 'only'> = {}): string {
  const rows = chosen(choice).map((f) => {
    const flag = `--${f.flags.slice(2).split(' ')[0]!}`;
    return `  ${flag.padEnd(15)} ${f.env.padEnd(25)} ${f.defaultText === '' ? f.config : `${f.config.padEnd(21)} ${f.defaultText}`}`;
  });
  const kafka = choice.only === undefined || choice.only.includes('brokers');
  return ['Connection settings (precedence: flag > environment > config file > default):', ...rows, ...(kafka ? [KAFKA_SECURITY_LINE] : [])].join('\n');
}

/** Help text explaining where each shared setting comes from (all of them). */
export const SETTINGS_HELP = settingsHelp();

/** Resolves the shared settings from a parser's parsed flags (other flags are ignored). */
export function settingsFromFlags(flags: Partial<Record<SettingsFlagName, unknown>>, env: NodeJS.ProcessEnv = process.env): AgentTraceSettings {
  const picked: SettingsFlags = {};
  for (const k of SETTINGS_FLAG_NAMES) {
    const v = flags[k];
    if (typeof v === 'string') picked[k] = v;
  }
  return resolveSettings(picked, env);
}

/**
 * What a command-line parser's value parser throws for a bad value. Shaped like commander's
 * InvalidArgumentError (its `code` and `exitCode` are what commander looks for), so commander
 * prints "option '--x <v>' argument 'v' is invalid." followed by the message, as a usage error.
 */
export class FlagValueError extends Error {
  readonly code = 'commander.invalidArgument';
  readonly exitCode = 1;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FlagValueError';
  }
}

/**
 * A value parser for a flag from any parse function: what it throws (common's parsers throw
 * OptionsError naming the flag) becomes the parser's usage error with the same message.
 */
export function flagParser<T>(parse: (value: string) => T): (value: string) => T {
  return (value) => {
    try {
      return parse(value);
    } catch (err) {
      throw new FlagValueError(errorMessage(err), { cause: err });
    }
  };
}

/** A flag's value parser for a duration (parseDurationMs): 500ms, 10s, 1.5m, 2h or ms. */
export const durationFlag = (flag: string, rule: NumberRule = {}): ((value: string) => number) => flagParser((v) => parseDurationMs(v, flag, rule));

/** A flag's value parser for a whole number (parseCount). */
export const countFlag = (flag: string, rule: NumberRule = {}): ((value: string) => number) => flagParser((v) => parseCount(v, flag, rule));
