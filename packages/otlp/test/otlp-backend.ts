/**
 * A small OTLP/HTTP trace backend for tests: a real HTTP server that decodes each request with
 * the official opentelemetry-proto definitions (the copy the OTel JS exporters ship) and answers
 * as a test tells it to. It records every span it accepted.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { repoRoot } from '../../../test-support/stack.js';

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
  /** The request it came in, counted from 1. */
  request: number;
}

export interface Answer {
  status: number;
  headers?: Record<string, string>;
  body?: Uint8Array | string;
}

export interface RequestInfo {
  n: number;
  spans: ReceivedSpan[];
  headers: IncomingMessage['headers'];
  at: number;
}

let types: { Request: protobuf.Type; Response: protobuf.Type } | undefined;

export async function otlpTypes(): Promise<{ Request: protobuf.Type; Response: protobuf.Type }> {
  if (types) return types;
  const root = new protobuf.Root();
  const protoDir = join(repoRoot, 'node_modules', '@opentelemetry', 'otlp-grpc-exporter-base', 'build', 'protos');
  root.resolvePath = (_o, target) => join(protoDir, target);
  await root.load('opentelemetry/proto/collector/trace/v1/trace_service.proto', { keepCase: true });
  types = {
    Request: root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest'),
    Response: root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse'),
  };
  return types;
}

type AnyValue = { string_value?: string; bool_value?: boolean; int_value?: unknown; double_value?: number };

/** The spans of an ExportTraceServiceRequest body, ids as hex. */
export async function decodeSpans(body: Uint8Array, request = 0): Promise<ReceivedSpan[]> {
  const { Request } = await otlpTypes();
  const msg = Request.decode(body);
  const err = Request.verify(msg);
  if (err) throw new Error(`not a valid ExportTraceServiceRequest: ${err}`);
  const doc = Request.toObject(msg, { longs: String, bytes: Buffer }) as {
    resource_spans?: Array<{ scope_spans?: Array<{ spans?: Array<{ trace_id: Buffer; span_id: Buffer; parent_span_id?: Buffer; name: string; kind: number; attributes?: Array<{ key: string; value: AnyValue }> }> }> }>;
  };
  const out: ReceivedSpan[] = [];
  for (const rs of doc.resource_spans ?? []) {
    for (const ss of rs.scope_spans ?? []) {
      for (const s of ss.spans ?? []) {
        const attributes: Record<string, unknown> = {};
        for (const a of s.attributes ?? []) attributes[a.key] = a.value.string_value ?? a.value.bool_value ?? a.value.int_value ?? a.value.double_value;
        out.push({
          traceId: Buffer.from(s.trace_id).toString('hex'),
          spanId: Buffer.from(s.span_id).toString('hex'),
          parentSpanId: s.parent_span_id && s.parent_span_id.length > 0 ? Buffer.from(s.parent_span_id).toString('hex') : '',
          name: s.name,
          kind: s.kind,
          attributes,
          request,
        });
      }
    }
  }
  return out;
}

export class TestBackend {
  /** Spans of the requests answered 2xx, in arrival order. */
  readonly accepted: ReceivedSpan[] = [];
  readonly requests: RequestInfo[] = [];
  open = 0;
  maxOpen = 0;
  /** Decides each answer; default 200. */
  answer: (r: RequestInfo) => Answer | Promise<Answer> = () => ({ status: 200 });
  #server: Server | undefined;
  #url = '';

  get url(): string {
    return this.#url;
  }

  async listen(): Promise<string> {
    const server = createServer((req, res) => void this.#handle(req, res));
    this.#server = server;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    this.#url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this.#url;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.open++;
    this.maxOpen = Math.max(this.maxOpen, this.open);
    try {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      if (req.url !== '/v1/traces' || req.headers['content-type'] !== 'application/x-protobuf') {
        res.writeHead(404).end();
        return;
      }
      const n = this.requests.length + 1;
      const info: RequestInfo = { n, spans: await decodeSpans(Buffer.concat(chunks), n), headers: req.headers, at: Date.now() };
      this.requests.push(info);
      const a = await this.answer(info);
      if (a.status >= 200 && a.status < 300) this.accepted.push(...info.spans);
      if (a.status === 200 && a.body === undefined) {
        const { Response } = await otlpTypes();
        res.writeHead(200, { 'content-type': 'application/x-protobuf', ...a.headers }).end(Response.encode(Response.create({})).finish());
      } else {
        res.writeHead(a.status, a.headers).end(a.body);
      }
    } catch (err) {
      res.writeHead(400).end(String(err));
    } finally {
      this.open--;
    }
  }

  async close(): Promise<void> {
    const s = this.#server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
}
