import { afterAll, describe, expect, it } from 'vitest';
import { AgentTracer, shutdownTracing, TracerError } from '@agenttrace/tracer';
import { eventually, uniqueName } from '../../../test-support/stack.js';

afterAll(async () => {
  await shutdownTracing();
});

describe('close() and onError agree (#14)', () => {
  it('a close() that gives up names every undelivered event, and onError hears the same, then their true fate', async () => {
    const errors: TracerError[] = [];
    // Nothing listens on port 1: Kafka is unreachable for the whole test.
    const tracer = new AgentTracer({
      sessionId: 'sess_close_agree',
      agentId: 'a',
      topic: uniqueName('closeagree'),
      kafka: { brokers: ['127.0.0.1:1'] },
      deliveryTimeoutMs: 3_000,
      handleExit: false,
      onError: (e) => errors.push(e),
    });
    const ids = [tracer.logEvent('one'), tracer.logEvent('two'), tracer.logEvent('three')];
    const closing = tracer.close(1_000);
    const err = await closing.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TracerError);
    const closeError = err as TracerError;
    expect(closeError.code).toBe('FLUSH_TIMEOUT');
    // session_start, the three steps, session_end
    expect(closeError.eventIds).toHaveLength(5);
    for (const id of ids) expect(closeError.eventIds).toContain(id);
    expect(closeError.message).toMatch(/5 event\(s\) .* still undelivered after 1000 ms \(5 not yet handed to Kafka/);
    const reported = errors.find((e) => e.code === 'FLUSH_TIMEOUT');
    expect(reported?.eventIds).toEqual(closeError.eventIds);
    // Their fate afterwards is reported too, with the true reason: Kafka was never reachable.
    await eventually('each event reported DELIVERY_FAILED', () => errors.filter((e) => e.code === 'DELIVERY_FAILED').length >= 5, 15_000);
    const failed = errors.filter((e) => e.code === 'DELIVERY_FAILED');
    expect(failed.flatMap((e) => e.eventIds).sort()).toEqual([...closeError.eventIds].sort());
    for (const f of failed) expect(f.message).toMatch(/Kafka \(127\.0\.0\.1:1\) was unreachable for \d+ ms \(deliveryTimeoutMs 3000\)/);
    expect(tracer.stats()).toMatchObject({ recorded: 5, delivered: 0, failed: 5, pending: 0 });
  });
});
