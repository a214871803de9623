import { describe, expect, it } from 'vitest';
import { KAFKA_CODES, OptionsError, backoffMs, isQueueFull, isTooLarge, produceWhenRoom, retry, stopRetrying } from '../src/index.js';

describe('retry', () => {
  it('retries until the function succeeds and passes the attempt number', async () => {
    const seen: number[] = [];
    const failed: number[] = [];
    const r = await retry(
      async (attempt) => {
        seen.push(attempt);
        if (attempt < 3) throw new Error(`no ${attempt}`);
        return 'ok';
      },
      { retries: 5, minMs: 1, maxMs: 2, onFailedAttempt: (_e, a) => failed.push(a) },
    );
    expect(r).toBe('ok');
    expect(seen).toEqual([1, 2, 3]);
    expect(failed).toEqual([1, 2]);
  });

  it('gives up with the last error when the retries are used up', async () => {
    let calls = 0;
    await expect(
      retry(async () => {
        calls += 1;
        throw new Error(`fail ${calls}`);
      }, { retries: 2, minMs: 1, maxMs: 1 }),
    ).rejects.toThrow('fail 3');
    expect(calls).toBe(3);
  });

  it('stops when shouldRetry says no, or the function throws stopRetrying', async () => {
    let calls = 0;
    await expect(
      retry(async () => {
        calls += 1;
        throw new Error('refused');
      }, { retries: Infinity, minMs: 1, maxMs: 1, shouldRetry: () => false }),
    ).rejects.toThrow('refused');
    expect(calls).toBe(1);
    await expect(retry(async () => Promise.reject(stopRetrying('permanent')), { retries: 10, minMs: 1, maxMs: 1 })).rejects.toThrow('permanent');
  });

  it('aborts during a backoff pause when the signal aborts', async () => {
    const ctrl = new AbortController();
    const started = Date.now();
    setTimeout(() => ctrl.abort(new Error('closing')), 50);
    await expect(
      retry(async () => {
        throw new Error('down');
      }, { retries: Infinity, minMs: 10_000, maxMs: 10_000, signal: ctrl.signal }),
    ).rejects.toThrow('closing');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('backoffMs grows from minMs, stays under maxMs, with jitter between half and all of it', () => {
    const o = { minMs: 100, maxMs: 5000 };
    expect(backoffMs(0, o, () => 0)).toBe(50);
    expect(backoffMs(0, o, () => 1)).toBe(100);
    expect(backoffMs(3, o, () => 1)).toBe(800);
    expect(backoffMs(20, o, () => 1)).toBe(5000);
    expect(backoffMs(20, o, () => 0)).toBe(2500);
  });

  it('rejects limits that make no sense, naming the option', () => {
    expect(() => retry(async () => 1, { retries: 1, minMs: 10, maxMs: 5 })).toThrow(OptionsError);
    expect(() => retry(async () => 1, { retries: 1, minMs: 10, maxMs: 5 })).toThrow(/maxMs/);
  });
});

describe('produceWhenRoom and the error codes', () => {
  const full = () => Object.assign(new Error('Local: Queue full'), { code: KAFKA_CODES.QUEUE_FULL });

  it('tries again while the queue is full, polling in between', async () => {
    let calls = 0;
    let polls = 0;
    const tries = await produceWhenRoom(
      () => {
        calls += 1;
        if (calls < 4) throw full();
      },
      { attempts: 10, intervalMs: 1, poll: () => (polls += 1) },
    );
    expect(tries).toBe(4);
    expect(polls).toBe(3);
  });

  it('gives up with the queue-full error after `attempts`, and at once on other errors', async () => {
    let calls = 0;
    await expect(
      produceWhenRoom(() => {
        calls += 1;
        throw full();
      }, { attempts: 3, intervalMs: 1 }),
    ).rejects.toThrow('Queue full');
    expect(calls).toBe(3);
    calls = 0;
    await expect(
      produceWhenRoom(() => {
        calls += 1;
        throw new Error('Local: Unknown topic');
      }, { attempts: 3, intervalMs: 1 }),
    ).rejects.toThrow('Unknown topic');
    expect(calls).toBe(1);
  });

  it('stops waiting when the signal aborts', async () => {
    const ctrl = new AbortController();
    setTimeout(() => ctrl.abort(), 30);
    const started = Date.now();
    await expect(
      produceWhenRoom(() => {
        throw full();
      }, { attempts: 1_000_000, intervalMs: 5, signal: ctrl.signal }),
    ).rejects.toThrow('Queue full');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('classifies errors by code, wrapped cause or message; -193 (a name that does not resolve) is not "too large"', () => {
    expect(isQueueFull({ code: -184 })).toBe(true);
    expect(isQueueFull(new Error('Local: Queue full'))).toBe(true);
    expect(isTooLarge({ code: 10 })).toBe(true);
    expect(isTooLarge(Object.assign(new Error('producing a record failed'), { cause: { code: 10 } }))).toBe(true);
    expect(isTooLarge(Object.assign(new Error('Local: Host resolution failure'), { code: KAFKA_CODES.RESOLVE }))).toBe(false);
  });
});
