import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { createGunzip, createInflate } from 'node:zlib';
import { Server as GrpcServer, ServerCredentials, status as GrpcStatus, type sendUnaryData, type ServerUnaryCall, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { errorMessage } from '@agenttrace/common';
import { EventPublisher } from '@agenttrace/tracer';
import { decodeJson, decodeProtobuf, encodeExportResponse, encodeStatus, type OtlpSpan } from './decode.js';
import { OtlpError } from './errors.js';
import { Redis } from 'ioredis';
import { SpanIngester, type IngestResult, type IngestStats } from './ingest.js';
import { MemoryLedger, RedisLedger, type SpanLedger } from './ledger.js';
import { resolveReceiverOptions, type ReceiverOptions, type ResolvedReceiverOptions } from './options.js';

type Format = 'protobuf' | 'json';

/** google.rpc.Code values used in error bodies. */
const RPC = { INVALID_ARGUMENT: 3, UNAUTHENTICATED: 16, UNAVAILABLE: 14, RESOURCE_EXHAUSTED: 8, UNIMPLEMENTED: 12, NOT_FOUND: 5 } as const;

class HttpProblem extends Error {
  readonly status: number;
  readonly rpc: number;

  constructor(status: number, rpc: number, message: string) {
    super(message);
    this.status = status;
    this.rpc = rpc;
  }
}

function formatOf(contentType: string | undefined): Format | undefined {
  const base = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (base === 'application/x-protobuf' || base === 'application/protobuf') return 'protobuf';
  if (base === 'application/json') return 'json';
  return undefined;
}

/**
 * Reads the body, decompressing gzip/deflate, and stops reading the moment either the wire
 * bytes or the decompressed bytes pass the limit (a small gzip body can expand enormously).
 */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase().trim();
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(new HttpProblem(413, RPC.RESOURCE_EXHAUSTED, `request body of ${declared} bytes is over the limit of ${limit} bytes`));
  let inflater: ReturnType<typeof createGunzip> | undefined;
  if (encoding === 'gzip' || encoding === 'x-gzip') inflater = createGunzip();
  else if (encoding === 'deflate') inflater = createInflate();
  else if (encoding !== 'identity' && encoding !== '') return Promise.reject(new HttpProblem(415, RPC.INVALID_ARGUMENT, `Content-Encoding ${JSON.stringify(encoding.slice(0, 64))} is not supported (use gzip, deflate or none)`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let wire = 0;
    let size = 0;
    let done = false;
    const finish = (err: Error | undefined) => {
      if (done) return;
      done = true;
      if (err) {
        req.unpipe();
        inflater?.destroy();
        reject(err);
      } else resolve(Buffer.concat(chunks, size));
    };
    const tooLarge = (what: string) => finish(new HttpProblem(413, RPC.RESOURCE_EXHAUSTED, `request body is over the limit of ${limit} bytes (${what})`));
    req.on('data', (c: Buffer) => {
      wire += c.length;
      if (wire > limit) tooLarge('as sent');
    });
    req.on('error', (err) => finish(new HttpProblem(400, RPC.INVALID_ARGUMENT, `reading the request failed: ${errorMessage(err)}`)));
    const out = inflater ?? req;
    out.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) return tooLarge('decompressed');
      chunks.push(c);
    });
    out.on('end', () => finish(undefined));
    if (inflater) {
      inflater.on('error', (err) => finish(new HttpProblem(400, RPC.INVALID_ARGUMENT, `the ${encoding} body could not be decompressed: ${errorMessage(err)}`)));
      req.pipe(inflater);
    }
  });
}

/**
 * The OTLP/gRPC trace service as the official opentelemetry-proto defines it
 * (`opentelemetry.proto.collector.trace.v1.TraceService/Export`). Messages pass as bytes: the
 * request is decoded by the same decoder as OTLP/HTTP protobuf bodies (same limits, same errors),
 * the answer is an ExportTraceServiceResponse. grpc-js does the HTTP/2 framing, compression,
 * deadlines and status codes.
 */
const TRACE_SERVICE = {
  Export: {
    path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  },
} as const;

/** The partial-success message of an ingest result ('' when nothing was rejected). */
function rejectedMessage(result: IngestResult): string {
  const rejected = result.rejected.length;
  if (rejected === 0) return '';
  return `${rejected} span(s) rejected: ${result.rejected
    .slice(0, 5)
    .map((r) => `span ${r.spanId}: ${r.reason}`)
    .join('; ')}${rejected > 5 ? '; ...' : ''}`;
}

export interface ReceiverStats extends IngestStats {
  /** Requests answered with a 4xx (bad input, auth). */
  badRequests: number;
  /** Requests answered with 503 (Kafka unavailable): the client retries them. */
  unavailable: number;
}

/**
 * The OTLP trace receiver: OTLP/HTTP (`POST /v1/traces` with protobuf or JSON bodies, optionally
 * gzip-compressed) and, with options.grpcPort, OTLP/gRPC (`TraceService/Export`), both with the
 * same rules. A request is answered 200 only once Kafka acknowledged every event made from
 * it; spans it could not map are listed as OTLP partial success; when Kafka does not acknowledge,
 * the answer is 503 with Retry-After so the exporter retries, and acknowledged spans of the
 * failed attempt are not produced again on the retry.
 */
export class OtlpReceiver {
  readonly options: ResolvedReceiverOptions;
  readonly #publisher: EventPublisher;
  readonly #ingester: SpanIngester;
  readonly #ledger: SpanLedger;
  readonly #server: Server;
  readonly #token: Buffer | undefined;
  #grpc: GrpcServer | undefined;
  #badRequests = 0;
  #unavailable = 0;
  #closing: Promise<void> | undefined;

  constructor(options: ReceiverOptions = {}) {
    this.options = resolveReceiverOptions(options);
    this.#token = this.options.token === undefined ? undefined : Buffer.from(`Bearer ${this.options.token}`);
    this.#publisher = new EventPublisher(this.options.publisher);
    const d = this.options.dedupeRedis;
    this.#ledger = d
      ? new RedisLedger(new Redis(d.url, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: true, connectTimeout: 2000 }), d.prefix, d.ttlSeconds, 60)
      : new MemoryLedger(this.options.dedupeWindow);
    this.#ingester = new SpanIngester(this.options, this.#publisher, this.#ledger);
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        // Never let one request take the service down.
        this.#send(res, 500, 'json', Buffer.from(JSON.stringify({ code: 13, message: `internal error: ${errorMessage(err)}` })));
      });
    });
    this.#server.headersTimeout = 30_000;
    this.#server.requestTimeout = 60_000;
  }

  /** Starts listening (OTLP/HTTP, and OTLP/gRPC when options.grpcPort is set); resolves with the bound addresses. */
  async listen(): Promise<{ host: string; port: number; url: string; grpc?: { port: number; url: string } }> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.options.port, this.options.host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    const addr = this.#server.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    const out: { host: string; port: number; url: string; grpc?: { port: number; url: string } } = { host: addr.address, port: addr.port, url: `http://${host}:${addr.port}/v1/traces` };
    if (this.options.grpcPort !== undefined) {
      try {
        const port = await this.#listenGrpc(this.options.grpcPort);
        out.grpc = { port, url: `http://${host}:${port}` };
      } catch (err) {
        // Either both listen or neither: the HTTP port is given back.
        await new Promise<void>((resolve) => this.#server.close(() => resolve()));
        throw err;
      }
    }
    return out;
  }

  async #listenGrpc(port: number): Promise<number> {
    const server = new GrpcServer({
      'grpc.max_receive_message_length': this.options.maxBodyBytes,
      // Calls a client left hanging do not keep a stopping receiver waiting for ever.
      'grpc.max_connection_age_grace_ms': 30_000,
    });
    const impl: UntypedServiceImplementation = {
      Export: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => this.#grpcExport(call, callback),
    };
    server.addService(TRACE_SERVICE, impl);
    const h = this.options.host;
    const address = `${h.includes(':') && !h.startsWith('[') ? `[${h}]` : h}:${port}`;
    const bound = await new Promise<number>((resolve, reject) =>
      server.bindAsync(address, ServerCredentials.createInsecure(), (err, p) => {
        if (err) {
          const e = new Error(`OTLP/gRPC could not listen on ${address}: ${err.message}`) as NodeJS.ErrnoException;
          // grpc-js says "No address added out of total 1 resolved"; the cause is (almost always) a port in use.
          e.code = /EADDRINUSE|address already in use|No address added/i.test(err.message) ? 'EADDRINUSE' : 'EACCES';
          reject(e);
        } else resolve(p);
      }),
    );
    this.#grpc = server;
    return bound;
  }

  #grpcExport(call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>): void {
    const fail = (code: GrpcStatus, details: string) => callback({ code, details });
    void (async () => {
      if (this.#token) {
        const got = Buffer.from(String(call.metadata.get('authorization')[0] ?? ''));
        if (!(got.length === this.#token.length && timingSafeEqual(got, this.#token))) {
          this.#badRequests++;
          return fail(GrpcStatus.UNAUTHENTICATED, 'missing or wrong bearer token (metadata authorization: Bearer <token>)');
        }
      }
      let spans: OtlpSpan[];
      try {
        spans = decodeProtobuf(call.request);
      } catch (err) {
        this.#badRequests++;
        return fail(GrpcStatus.INVALID_ARGUMENT, errorMessage(err));
      }
      if (spans.length > this.options.maxSpansPerRequest) {
        this.#badRequests++;
        return fail(GrpcStatus.RESOURCE_EXHAUSTED, `${spans.length} spans in one request, over the limit of ${this.options.maxSpansPerRequest}`);
      }
      const result = await this.#ingester.ingest(spans);
      if (result.retry !== undefined) {
        // UNAVAILABLE is retryable in the OTLP/gRPC spec: the exporter keeps the spans and sends them again.
        this.#unavailable++;
        return fail(GrpcStatus.UNAVAILABLE, `${result.failed} span(s) not acknowledged by Kafka; retry: ${result.retry}`);
      }
      callback(null, encodeExportResponse(result.rejected.length, rejectedMessage(result)));
    })().catch((err: unknown) => fail(GrpcStatus.INTERNAL, `internal error: ${errorMessage(err)}`));
  }

  stats(): ReceiverStats {
    return { ...this.#ingester.stats(), badRequests: this.#badRequests, unavailable: this.#unavailable };
  }

  /** Stops accepting requests, lets the ones in flight finish, and releases Kafka. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const grpc = this.#grpc;
      await Promise.all([
        new Promise<void>((resolve) => {
          this.#server.close(() => resolve());
          this.#server.closeIdleConnections();
        }),
        grpc === undefined
          ? undefined
          : new Promise<void>((resolve) => {
              // Calls in progress finish (their answer waits for Kafka); past 10 s they are cut.
              const t = setTimeout(() => {
                grpc.forceShutdown();
                resolve();
              }, 10_000);
              grpc.tryShutdown(() => {
                clearTimeout(t);
                resolve();
              });
            }),
      ]);
      await this.#publisher.close();
      await this.#ledger.close();
    })();
    return this.#closing;
  }

  #authorized(req: IncomingMessage): boolean {
    if (!this.#token) return true;
    const got = Buffer.from(req.headers.authorization ?? '');
    return got.length === this.#token.length && timingSafeEqual(got, this.#token);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const format = formatOf(req.headers['content-type']) ?? 'json';
    try {
      const path = (req.url ?? '').split('?')[0];
      if (path !== '/v1/traces') throw new HttpProblem(404, RPC.NOT_FOUND, `no such endpoint ${JSON.stringify((req.url ?? '').slice(0, 128))}; OTLP traces go to POST /v1/traces`);
      if (req.method !== 'POST') {
        res.setHeader('Allow', 'POST');
        throw new HttpProblem(405, RPC.UNIMPLEMENTED, `method ${req.method ?? ''} is not allowed on /v1/traces; use POST`);
      }
      if (!this.#authorized(req)) {
        res.setHeader('WWW-Authenticate', 'Bearer');
        throw new HttpProblem(401, RPC.UNAUTHENTICATED, 'missing or wrong bearer token (Authorization: Bearer <token>)');
      }
      const declared = formatOf(req.headers['content-type']);
      if (!declared) {
        throw new HttpProblem(415, RPC.INVALID_ARGUMENT, `Content-Type ${JSON.stringify((req.headers['content-type'] ?? '').slice(0, 128))} is not supported; use application/x-protobuf or application/json`);
      }
      const body = await readBody(req, this.options.maxBodyBytes);
      let spans: OtlpSpan[];
      try {
        if (declared === 'protobuf') spans = decodeProtobuf(body);
        else {
          let parsed: unknown;
          try {
            parsed = JSON.parse(body.toString('utf8'));
          } catch (err) {
            throw new OtlpError('DECODE_FAILED', `the body is not JSON: ${errorMessage(err)}`);
          }
          spans = decodeJson(parsed);
        }
      } catch (err) {
        throw new HttpProblem(400, RPC.INVALID_ARGUMENT, errorMessage(err));
      }
      if (spans.length > this.options.maxSpansPerRequest) {
        throw new HttpProblem(413, RPC.RESOURCE_EXHAUSTED, `${spans.length} spans in one request, over the limit of ${this.options.maxSpansPerRequest}`);
      }
      const result = await this.#ingester.ingest(spans);
      if (result.retry !== undefined) {
        this.#unavailable++;
        res.setHeader('Retry-After', String(this.options.retryAfterSeconds));
        const msg = `${result.failed} span(s) not acknowledged by Kafka; retry: ${result.retry}`;
        this.#send(res, 503, declared, declared === 'protobuf' ? encodeStatus(RPC.UNAVAILABLE, msg) : Buffer.from(JSON.stringify({ code: RPC.UNAVAILABLE, message: msg })));
        return;
      }
      const rejected = result.rejected.length;
      const message = rejectedMessage(result);
      if (declared === 'protobuf') this.#send(res, 200, declared, encodeExportResponse(rejected, message));
      else this.#send(res, 200, declared, Buffer.from(JSON.stringify(rejected === 0 ? {} : { partialSuccess: { rejectedSpans: String(rejected), errorMessage: message } })));
    } catch (err) {
      const p = err instanceof HttpProblem ? err : new HttpProblem(500, 13, `internal error: ${errorMessage(err)}`);
      if (p.status < 500) this.#badRequests++;
      this.#send(res, p.status, format, format === 'protobuf' ? encodeStatus(p.rpc, p.message) : Buffer.from(JSON.stringify({ code: p.rpc, message: p.message })));
      // A body left unread (413, 401...) is not drained: close the connection instead.
      if (!req.complete) res.once('finish', () => req.destroy());
    }
  }

  #send(res: ServerResponse, status: number, format: Format, body: Buffer): void {
    if (res.headersSent) {
      res.end();
      return;
    }
    res.statusCode = status;
    res.setHeader('Content-Type', format === 'protobuf' ? 'application/x-protobuf' : 'application/json');
    res.setHeader('Content-Length', body.length);
    res.end(body);
  }
}
