import { isIP } from 'node:net';
import { OptionsError, loadConfigFile } from '@agenttrace/common';

export interface WebServerOptions {
  /** Address to bind (default 127.0.0.1). Anything but loopback requires `token`. */
  host?: string;
  /** TCP port (default 9470; 0 picks a free one). */
  port?: number;
  /** Shared secret every request must carry (cookie set from ?token=, or Authorization: Bearer). */
  token?: string;
  /** Server-Sent Events connections served at once; more are refused with 503. */
  maxStreams?: number;
  /** Sessions kept in memory after a read, for on-demand payloads (LRU). */
  sessionCacheSize?: number;
  /** How long a cached read is reused (ms). */
  sessionCacheMs?: number;
  /** Heartbeat comment on idle event streams (ms), so proxies keep them open. */
  heartbeatMs?: number;
  /** Directory of the built front end (default: dist/public next to the server). */
  publicDir?: string;
}

export type ResolvedWebServerOptions = Required<Omit<WebServerOptions, 'token'>> & { token: string | undefined };

export const WEB_DEFAULTS = {
  host: '127.0.0.1',
  port: 9470,
  maxStreams: 1000,
  sessionCacheSize: 16,
  sessionCacheMs: 30_000,
  heartbeatMs: 15_000,
} as const;

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** Whether a bind address only accepts connections from this machine. */
export function isLoopback(host: string): boolean {
  if (LOOPBACK.has(host)) return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

function int(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new OptionsError(`options.${name}`, `must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return v;
}

export function resolveWebServerOptions(o: WebServerOptions, defaultPublicDir: string): ResolvedWebServerOptions {
  const host = o.host ?? WEB_DEFAULTS.host;
  if (typeof host !== 'string' || host === '') throw new OptionsError('options.host', 'must be a non-empty host name or address');
  const token = o.token === undefined || o.token === '' ? undefined : o.token;
  if (token !== undefined && token.length < 16) throw new OptionsError('options.token', 'must be at least 16 characters');
  if (!isLoopback(host) && token === undefined) throw new OptionsError('options.token', `is required when binding ${host}, which is not loopback (anyone who can reach it could read every session)`);
  return {
    host,
    port: int('port', o.port ?? WEB_DEFAULTS.port, 0, 65535),
    token,
    maxStreams: int('maxStreams', o.maxStreams ?? WEB_DEFAULTS.maxStreams, 1, 100_000),
    sessionCacheSize: int('sessionCacheSize', o.sessionCacheSize ?? WEB_DEFAULTS.sessionCacheSize, 0, 1000),
    sessionCacheMs: int('sessionCacheMs', o.sessionCacheMs ?? WEB_DEFAULTS.sessionCacheMs, 0, 3_600_000),
    heartbeatMs: int('heartbeatMs', o.heartbeatMs ?? WEB_DEFAULTS.heartbeatMs, 100, 3_600_000),
    publicDir: o.publicDir ?? defaultPublicDir,
  };
}

/** What the command line gave for the server itself (undefined = flag not given). */
export interface WebFlags {
  host?: string;
  port?: string;
  config?: string;
}

/**
 * Host, port and token with the usual precedence: flag > environment (AGENTTRACE_WEB_HOST,
 * AGENTTRACE_WEB_PORT, AGENTTRACE_WEB_TOKEN) > config file ("web": {"host", "port"}) > default.
 * The token is never read from a flag (it would show in `ps`) nor from the config file's defaults.
 */
export function webSettings(flags: WebFlags, env: NodeJS.ProcessEnv = process.env): WebServerOptions {
  const configPath = flags.config ?? env.AGENTTRACE_CONFIG;
  const file = configPath ? loadConfigFile(configPath) : {};
  const web = file.web;
  if (web !== undefined && (typeof web !== 'object' || web === null || Array.isArray(web))) throw new OptionsError(`config file ${configPath}: "web"`, 'must be an object');
  const fw = (web ?? {}) as { host?: unknown; port?: unknown; token?: unknown };
  const host = flags.host ?? (env.AGENTTRACE_WEB_HOST || undefined) ?? (typeof fw.host === 'string' ? fw.host : undefined);
  const portText = flags.port ?? (env.AGENTTRACE_WEB_PORT || undefined) ?? (fw.port !== undefined ? String(fw.port as string | number) : undefined);
  const where = flags.port !== undefined ? '--port' : env.AGENTTRACE_WEB_PORT ? 'AGENTTRACE_WEB_PORT' : 'config "web.port"';
  const out: WebServerOptions = {};
  if (host !== undefined) out.host = host;
  if (portText !== undefined) {
    const port = Number(portText);
    if (!/^\d+$/.test(portText.trim()) || port > 65535) throw new OptionsError(where, `must be a port number from 0 to 65535, got "${portText}"`);
    out.port = port;
  }
  const token = env.AGENTTRACE_WEB_TOKEN || (typeof fw.token === 'string' ? fw.token : undefined);
  if (token) out.token = token;
  return out;
}
