import { ConfigError, OptionsError, kafkaConnectionFromEnv, loadConfigFile, validateKafkaConnection, type KafkaConnectionOptions } from '@agenttrace/common';
import { validateAlias } from './options.js';

/** kafmirror's part of a config file: named clusters, and defaults for replicate. */
export interface KafmirrorConfigFile {
  clusters?: Record<string, Partial<KafkaConnectionOptions>>;
  kafmirror?: Record<string, unknown>;
}

export interface ResolvedCluster {
  alias: string;
  conn: KafkaConnectionOptions;
}

const BROKER_LIST = /^[^\s:,]+:\d{1,5}(,\s*[^\s:,]+:\d{1,5})*$/;

/** Reads the config file (flag, then AGENTTRACE_CONFIG); an absent path gives an empty config. */
export function loadKafmirrorConfig(path: string | undefined): KafmirrorConfigFile {
  if (!path) return {};
  const file = loadConfigFile(path) as KafmirrorConfigFile;
  if (file.clusters !== undefined && (typeof file.clusters !== 'object' || file.clusters === null || Array.isArray(file.clusters))) {
    throw new ConfigError('CONFIG_MALFORMED', `config file ${path}: "clusters" must be an object of alias → {"brokers": [...]}`);
  }
  for (const [alias, c] of Object.entries(file.clusters ?? {})) {
    if (typeof c !== 'object' || c === null) throw new ConfigError('CONFIG_MALFORMED', `config file ${path}: clusters."${alias}" must be an object`);
    if (typeof c.brokers === 'string') c.brokers = (c.brokers as string).split(',').map((b) => b.trim()).filter(Boolean);
  }
  if (file.kafmirror !== undefined && (typeof file.kafmirror !== 'object' || file.kafmirror === null)) {
    throw new ConfigError('CONFIG_MALFORMED', `config file ${path}: "kafmirror" must be an object`);
  }
  return file;
}

/**
 * Resolves `--source`/`--target`: a broker list ("host:port,...") or the alias of a cluster in the
 * config file. Without the flag, AGENTTRACE_SOURCE_BROKERS / AGENTTRACE_TARGET_BROKERS. The
 * environment's AGENTTRACE_<ROLE>_KAFKA_* settings (SASL, TLS) apply over the file's.
 */
export function resolveCluster(
  role: 'source' | 'target',
  flag: string | undefined,
  aliasFlag: string | undefined,
  env: NodeJS.ProcessEnv,
  file: KafmirrorConfigFile,
): ResolvedCluster {
  const flagName = `--${role}`;
  const envPrefix = `AGENTTRACE_${role.toUpperCase()}_`;
  const fromEnv = kafkaConnectionFromEnv(env, envPrefix);
  let alias: string;
  let conn: Partial<KafkaConnectionOptions>;
  let where: string;
  if (flag !== undefined && BROKER_LIST.test(flag.trim())) {
    conn = { brokers: flag.split(',').map((b) => b.trim()) };
    alias = aliasFlag ?? role;
    where = flagName;
  } else if (flag !== undefined) {
    const known = file.clusters ?? {};
    const entry = Object.hasOwn(known, flag) ? known[flag] : undefined;
    if (!entry) {
      const names = Object.keys(known);
      throw new OptionsError(
        flagName,
        `"${flag}" is neither a broker list (host:port,...) nor a cluster alias of the config file (${names.length > 0 ? `known: ${names.join(', ')}` : 'no config file with "clusters" given: use --config or AGENTTRACE_CONFIG'})`,
      );
    }
    conn = { ...entry };
    alias = aliasFlag ?? flag;
    where = `clusters.${flag}`;
  } else if (fromEnv.brokers) {
    conn = { brokers: fromEnv.brokers };
    alias = aliasFlag ?? role;
    where = `${envPrefix}BROKERS`;
  } else {
    throw new OptionsError(flagName, `is required: a broker list (host:port,...) or a cluster alias from the config file, or set ${envPrefix}BROKERS`);
  }
  if (fromEnv.securityProtocol) conn.securityProtocol = fromEnv.securityProtocol;
  if (fromEnv.sasl) conn.sasl = fromEnv.sasl;
  if (fromEnv.ssl) conn.ssl = { ...(conn.ssl ?? {}), ...fromEnv.ssl };
  validateAlias(`--${role}-alias`, alias);
  return { alias, conn: validateKafkaConnection(conn, where) };
}
