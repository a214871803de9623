import { describe, expect, it } from 'vitest';
import { OptionsError } from '@agenttrace/common';
import { classifyStatus, describeEndpoint, eventsToSpans, resolveForwarderOptions, retryAfterMs } from '../src/index.js';
import { makeEvent } from '../../../test-support/stack.js';

const kafka = { brokers: ['127.0.0.1:9092'] };

describe('forwarder: pure parts', () => {
  it('classifies answers: 2xx ok; 408, 429, 5xx retried; 401/403/404 retried as configuration; other 4xx refuse the content', () => {
    expect([200, 202, 299].map(classifyStatus)).toEqual(['ok', 'ok', 'ok']);
    expect([408, 429, 500, 502, 503, 504].map(classifyStatus)).toEqual(['retry', 'retry', 'retry', 'retry', 'retry', 'retry']);
    expect([401, 403, 404].map(classifyStatus)).toEqual(['config', 'config', 'config']);
    expect([400, 413, 415, 422].map(classifyStatus)).toEqual(['refused', 'refused', 'refused', 'refused']);
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    const now = Date.parse('2026-11-28T10:00:00Z');
    expect(retryAfterMs('3', now)).toBe(3000);
    expect(retryAfterMs(' 0 ', now)).toBe(0);
    expect(retryAfterMs('Sat, 28 Nov 2026 10:00:07 GMT', now)).toBe(7000);
    expect(retryAfterMs('Sat, 28 Nov 2026 09:00:00 GMT', now)).toBe(0);
    expect(retryAfterMs('soon', now)).toBeUndefined();
    expect(retryAfterMs(null, now)).toBeUndefined();
  });

  it('never prints user info or a query of the endpoint', () => {
    expect(describeEndpoint('https://user:secret@otel.example:4318/v1/traces?api_key=k')).toBe('https://otel.example:4318/v1/traces');
  });

  it('validates its options, naming the option, and never echoes a header value', () => {
    const o = resolveForwarderOptions({ endpoint: 'http://127.0.0.1:4318', kafka });
    expect(o).toMatchObject({ endpoint: 'http://127.0.0.1:4318/v1/traces', topic: 'agent-events', group: 'agenttrace-otlp-forward', batchSize: 512, maxInFlight: 4, dlqTopic: 'agent-events.dlq' });
    expect(() => resolveForwarderOptions({ endpoint: '', kafka })).toThrow(/options\.endpoint/);
    expect(() => resolveForwarderOptions({ endpoint: 'ftp://x', kafka })).toThrow(/options\.endpoint.*http/);
    expect(() => resolveForwarderOptions({ endpoint: 'http://x', kafka, maxInFlight: 0 })).toThrow(/options\.maxInFlight/);
    expect(() => resolveForwarderOptions({ endpoint: 'http://x', kafka, batchSize: 1.5 })).toThrow(/options\.batchSize/);
    expect(() => resolveForwarderOptions({ endpoint: 'http://x', kafka, group: 'a b' })).toThrow(/options\.group/);
    expect(() => resolveForwarderOptions({ endpoint: 'http://x', kafka: { brokers: [] } })).toThrow(/options\.kafka\.brokers/);
    expect(() => resolveForwarderOptions({ endpoint: 'http://x', kafka, startFrom: 'middle' as never })).toThrow(OptionsError);
    let message = '';
    try {
      resolveForwarderOptions({ endpoint: 'http://x', kafka, headers: { Authorization: 'Bearer s3cr3t-token\nX: y' } });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/options\.headers\["Authorization"\]/);
    expect(message).not.toContain('s3cr3t');
  });

  it('an event written by the receiver names the same parent span whether its parent is in the same export or not', () => {
    // Ids as the receiver writes them: the span's own, and its parent's span id (context.otel.parent_span_id).
    const parent = makeEvent({ event_id: 'evt_0PARENT00000000000000000000'.slice(0, 30), context: { otel: { trace_id: 'a'.repeat(32), span_id: '1'.repeat(16) } } });
    const child = makeEvent({ context: { parent_event_id: parent.event_id, otel: { trace_id: 'a'.repeat(32), span_id: '2'.repeat(16), parent_span_id: '1'.repeat(16) } } });
    const together = eventsToSpans([parent, child])[1]!;
    const alone = eventsToSpans([child])[0]!;
    expect(together.parentSpanId!.toString('hex')).toBe('1'.repeat(16));
    expect(alone.parentSpanId!.toString('hex')).toBe('1'.repeat(16));
    expect(alone.spanId.equals(together.spanId) && alone.traceId.equals(together.traceId)).toBe(true);
  });
});
