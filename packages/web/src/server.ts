import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorMessage, loggerFromHook, type AgentTraceSettings } from '@agenttrace/common';
import type { AgentEvent } from '@agenttrace/contract';
import { SessionReader, type SessionReadResult } from '@agenttrace/sessions';
import { compareSessions, comparisonJson, type SideDescription } from '@agenttrace/kdiff';
import { checkId, parseCursor, parseListQuery, readSource, sessionDocument, sessionRow } from './api.js';
import { HttpError, ListenError } from './errors.js';
import { LiveFeed, type SessionUpdate } from './live-feed.js';
import { isLoopback, resolveWebServerOptions, type ResolvedWebServerOptions, type WebServerOptions } from './options.js';
import { authorize, hostAllowed, redact, secretsOf, securityHeaders } from './security.js';

// From dist/ (the bin) and from src/ (tests run the sources) alike.
const DEFAULT_PUBLIC = fileURLToPath(new URL('../dist/public/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/** Files the front end is made of; nothing else under the public directory is served. */
const STATIC = new Set(['/app.js', '/app.css', '/favicon.svg']);

function statusOf(err: unknown): number {
  if (err instanceof HttpError) return err.status;
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'SESSION_NOT_FOUND') return 404;
  if (code === 'SOURCE_UNAVAILABLE' || code === 'KAFKA_UNAVAILABLE') return 503;
  if (code === 'INVALID_OPTION') return 400;
  return 500;
}

interface CachedRead {
  at: number;
  result: SessionReadResult;
}

/**
 * The web view's HTTP server: the built front end, a JSON API over SessionReader (so a session
 * opens from Redis, Kafka or the archive), and Server-Sent Events fed by the dashboard
 * consumer's change channel. One reader and one Redis subscription serve every page.
 */
export class WebServer {
  readonly #settings: AgentTraceSettings;
  readonly #opts: ResolvedWebServerOptions;
  readonly #reader: SessionReader;
  readonly #feed: LiveFeed;
  readonly #secrets: string[];
  readonly #server: Server;
  readonly #streams = new Set<ServerResponse>();
  readonly #cache = new Map<string, CachedRead>();
  /** List queries being answered: pages asking the same while one runs share its answer. */
  readonly #inflight = new Map<string, Promise<Record<string, unknown>>>();
  #url: string | undefined;
  #closing: Promise<void> | undefined;

  constructor(settings: AgentTraceSettings, options: WebServerOptions = {}) {
    this.#settings = settings;
    this.#opts = resolveWebServerOptions(options, DEFAULT_PUBLIC);
    this.#reader = new SessionReader(settings, { clientId: 'agenttrace-web' });
    this.#feed = new LiveFeed(settings.redisUrl, settings.redisPrefix);
    this.#secrets = secretsOf(settings, this.#opts.token);
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => this.#fail(res, err));
    });
    // Event streams stay open for as long as a page does.
    this.#server.requestTimeout = 0;
    this.#server.headersTimeout = 30_000;
    this.#server.keepAliveTimeout = 5_000;
  }

  /** The base URL, once listening (a loopback name when bound to a wildcard address). */
  get url(): string {
    if (!this.#url) throw new Error('WebServer is not listening');
    return this.#url;
  }

  get openStreams(): number {
    return this.#streams.size;
  }

  async start(): Promise<string> {
    const { host, port } = this.#opts;
    await new Promise<void>((resolveListen, reject) => {
      const onError = (err: unknown) => reject(new ListenError(`${host}:${port}`, err));
      this.#server.once('error', onError);
      this.#server.listen(port, host, () => {
        this.#server.off('error', onError);
        resolveListen();
      });
    });
    const addr = this.#server.address();
    const bound = typeof addr === 'object' && addr ? addr.port : port;
    const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
    this.#url = `http://${shown}:${bound}`;
    return this.#url;
  }

  /** Stops accepting, ends open event streams, closes the reader; idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const closed = new Promise<void>((r) => this.#server.close(() => r()));
      for (const s of this.#streams) s.end();
      this.#streams.clear();
      this.#server.closeIdleConnections();
      this.#feed.close();
      await closed;
      await this.#reader.close();
    })();
    return this.#closing;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    securityHeaders(res);
    if (!hostAllowed(req, isLoopback(this.#opts.host))) throw new HttpError(421, 'MISDIRECTED', 'this server answers only to a loopback host name (localhost, 127.0.0.1, [::1])');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      throw new HttpError(405, 'METHOD_NOT_ALLOWED', 'only GET is supported');
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    const auth = authorize(req, url, this.#opts.token);
    if (auth.ok === 'redirect') {
      res.writeHead(303, { Location: auth.location, 'Set-Cookie': auth.cookie, 'Cache-Control': 'no-store' });
      res.end();
      return;
    }
    if (!auth.ok) throw new HttpError(401, 'UNAUTHORIZED', 'a token is required: open the URL with ?token=<token> once, or send Authorization: Bearer <token>');
    const path = url.pathname;
    if (path === '/' || path === '/index.html') return this.#static(res, '/index.html');
    if (STATIC.has(path)) return this.#static(res, path);
    if (!path.startsWith('/api/')) throw new HttpError(404, 'NOT_FOUND', `no page ${path}`);
    const parts = path.slice(5).split('/').map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        throw new HttpError(400, 'BAD_REQUEST', 'malformed percent-encoding in the path');
      }
    });
    const q = url.searchParams;
    const [a, b, c, d, e] = parts;
    if (a === 'sessions' && parts.length === 1) return this.#json(res, await this.#shared(`sessions?${q.toString()}`, () => this.#list(q)));
    if (a === 'sessions' && b !== undefined && parts.length === 2) return this.#json(res, await this.#session(checkId(b, 'session id'), q));
    if (a === 'sessions' && b !== undefined && c === 'stream' && parts.length === 3) return this.#sessionStream(req, res, checkId(b, 'session id'), q);
    if (a === 'sessions' && b !== undefined && c === 'events' && d !== undefined && e === 'payload' && parts.length === 5) return this.#json(res, await this.#payload(checkId(b, 'session id'), d, q));
    if (a === 'compare' && parts.length === 1) return this.#json(res, await this.#compare(q));
    if (a === 'live' && parts.length === 1) return this.#json(res, await this.#shared(`live?${q.toString()}`, () => this.#live(q)));
    if (a === 'stream' && parts.length === 1) return this.#updatesStream(req, res);
    if (a === 'config' && parts.length === 1) return this.#json(res, this.#config());
    throw new HttpError(404, 'NOT_FOUND', `no API ${path}`);
  }

  async #static(res: ServerResponse, path: string): Promise<void> {
    const root = resolve(this.#opts.publicDir);
    const file = resolve(join(root, path));
    if (!file.startsWith(root + sep)) throw new HttpError(404, 'NOT_FOUND', 'not found');
    let body: Buffer;
    try {
      body = await readFile(file);
    } catch {
      throw new HttpError(path === '/index.html' ? 500 : 404, 'NOT_BUILT', `the front end is not built (${path} missing): run npm run build:ui -w @agenttrace/web`);
    }
    res.writeHead(200, { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream', 'Cache-Control': 'no-cache', 'Content-Length': body.length });
    res.end(body);
  }

  #json(res: ServerResponse, doc: unknown, status = 200): void {
    const body = redact(JSON.stringify(doc), this.#secrets);
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  }

  #fail(res: ServerResponse, err: unknown): void {
    const status = statusOf(err);
    const code = (err as { code?: unknown } | null)?.code;
    const message = status === 500 && !(err instanceof HttpError) ? `internal error: ${errorMessage(err)}` : errorMessage(err);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    securityHeaders(res);
    this.#json(res, { error: { code: typeof code === 'string' ? code : 'ERROR', message } }, status);
  }

  #config(): Record<string, unknown> {
    return {
      format: 'agenttrace-web.config.v1',
      topic: this.#settings.topic,
      sources: { redis: this.#reader.describe('redis'), kafka: this.#reader.describe('kafka'), archive: this.#reader.describe('archive') },
      token_required: this.#opts.token !== undefined,
    };
  }

  /**
   * Every open page refetches its list when the change feed announces an update, so a hundred
   * pages ask the same question at once; they share one answer instead of a hundred Redis scans.
   * Nothing is cached past the moment the answer is ready.
   */
  #shared(key: string, run: () => Promise<Record<string, unknown>>): Promise<Record<string, unknown>> {
    const running = this.#inflight.get(key);
    if (running) return running;
    const p = run().finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, p);
    return p;
  }

  async #list(q: URLSearchParams): Promise<Record<string, unknown>> {
    const { list, sort, limit } = parseListQuery(q);
    // `tools` is ranked here over the reader's candidates (up to 10 000 most recent).
    // 'tools' (the page's "most tool calls") is the reader's exact tool-calls ranking over every session.
    const rows = await this.#reader.listSessions({ ...list, sort: sort === 'tools' ? 'tool-calls' : sort, limit });
    return { format: 'agenttrace-web.sessions.v1', source: rows[0]?.source ?? (list.source === 'auto' ? 'none' : list.source), sort, sessions: rows.map(sessionRow) };
  }

  async #read(id: string, source: ReturnType<typeof readSource>): Promise<SessionReadResult> {
    const result = await this.#reader.read(id, { source, restoreOffloads: false });
    if (this.#opts.sessionCacheSize > 0) {
      this.#cache.delete(id);
      this.#cache.set(id, { at: Date.now(), result });
      while (this.#cache.size > this.#opts.sessionCacheSize) this.#cache.delete(this.#cache.keys().next().value!);
    }
    return result;
  }

  /** Offloaded payloads stay references here; the page fetches one on demand (#payload). */
  async #session(id: string, q: URLSearchParams): Promise<Record<string, unknown>> {
    return sessionDocument(await this.#read(id, readSource(q)));
  }

  async #payload(id: string, eventId: string, q: URLSearchParams): Promise<Record<string, unknown>> {
    const hit = this.#cache.get(id);
    const result = hit && Date.now() - hit.at <= this.#opts.sessionCacheMs ? hit.result : await this.#read(id, readSource(q));
    const event = result.events.find((ev) => ev.event_id === eventId);
    if (!event) throw new HttpError(404, 'EVENT_NOT_FOUND', `session ${id} has no event ${eventId}`);
    const r = await this.#reader.restoreEvents([event]);
    return { format: 'agenttrace-web.payload.v1', session_id: id, event: r.events[0], warnings: r.warnings };
  }

  async #compare(q: URLSearchParams): Promise<Record<string, unknown>> {
    const a = q.get('a');
    const b = q.get('b');
    if (!a || !b) throw new HttpError(400, 'BAD_REQUEST', 'compare needs two sessions: ?a=<session-id>&b=<session-id>');
    const [ra, rb] = await Promise.all([this.#reader.read(checkId(a, 'a'), { source: readSource(q, 'source_a') }), this.#reader.read(checkId(b, 'b'), { source: readSource(q, 'source_b') })]);
    const ignore = q.getAll('ignore').filter(Boolean);
    const cmp = compareSessions(ra.events, rb.events, ignore.length > 0 ? { ignore } : {});
    const side = (r: SessionReadResult): SideDescription => ({ kind: 'session', name: r.sessionId, source: r.source, events: r.events.length, warnings: r.warnings });
    // The kdiff.compare.v1 document, as `kdiff --json` prints it.
    return comparisonJson(cmp, side(ra), side(rb));
  }

  async #live(q: URLSearchParams): Promise<Record<string, unknown>> {
    const limitText = q.get('limit') || '20';
    const limit = Number(limitText);
    if (!Number.isInteger(limit) || limit <= 0 || limit > 200) throw new HttpError(400, 'BAD_REQUEST', `limit must be an integer from 1 to 200, got "${limitText}"`);
    const [rows, alerts] = await Promise.all([this.#reader.listSessions({ status: 'active', sort: 'last', limit }), this.#reader.recentAlerts(20)]);
    return { format: 'agenttrace-web.live.v1', source: rows[0]?.source ?? 'none', at: new Date().toISOString(), sessions: rows.map(sessionRow), alerts };
  }

  /** Opens an event stream; undefined when the server is at its stream limit (answered 503). */
  #openStream(req: IncomingMessage, res: ServerResponse): (() => void) | undefined {
    if (this.#streams.size >= this.#opts.maxStreams) {
      this.#json(res, { error: { code: 'TOO_MANY_STREAMS', message: `the server already serves ${this.#opts.maxStreams} live pages` } }, 503);
      return undefined;
    }
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    res.write('retry: 2000\n\n');
    this.#streams.add(res);
    const beat = setInterval(() => res.write(': keep-alive\n\n'), this.#opts.heartbeatMs);
    beat.unref();
    let done = false;
    const end = () => {
      if (done) return;
      done = true;
      clearInterval(beat);
      this.#streams.delete(res);
    };
    req.on('close', end);
    res.on('close', end);
    return end;
  }

  #send(res: ServerResponse, event: string, data: unknown): void {
    if (res.writableEnded) return;
    res.write(`event: ${event}\ndata: ${redact(JSON.stringify(data), this.#secrets)}\n\n`);
  }

  async #updatesStream(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const end = this.#openStream(req, res);
    if (!end) return;
    const listener = (u: SessionUpdate) => this.#send(res, 'update', u);
    res.on('close', () => this.#feed.remove(listener));
    try {
      await this.#feed.add(listener);
      this.#send(res, 'ready', { channel: 'updates' });
    } catch (err) {
      this.#send(res, 'warning', { message: `live updates unavailable: ${errorMessage(err)}` });
    }
  }

  async #sessionStream(req: IncomingMessage, res: ServerResponse, id: string, q: URLSearchParams): Promise<void> {
    const cursor = parseCursor(q.get('cursor'), this.#settings.topic);
    const end = this.#openStream(req, res);
    if (!end) return;
    const ac = new AbortController();
    res.on('close', () => ac.abort());
    this.#send(res, 'ready', { session_id: id });
    try {
      await this.#reader.follow(id, (events: AgentEvent[]) => this.#send(res, 'events', events), ac.signal, {
        ...(cursor ? { cursor } : {}),
        restoreOffloads: false,
        logger: loggerFromHook((_level, m) => this.#send(res, 'warning', { message: m }), { level: 'warn' }),
      });
    } catch (err) {
      if (!ac.signal.aborted) this.#send(res, 'warning', { message: `following stopped: ${errorMessage(err)}` });
    }
  }
}
