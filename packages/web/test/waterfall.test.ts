import { describe, expect, it } from 'vitest';
import { makeEvent } from '../../../test-support/stack.js';
import type { AgentEvent } from '../src/ui/api.js';
import { buildRows, nextError, treeOrder } from '../src/ui/waterfall.js';

const T0 = Date.parse('2026-01-15T14:00:00Z');
let seq = 0;
const ev = (o: Partial<AgentEvent> & { ms: number }): AgentEvent => {
  const { ms, ...rest } = o;
  return makeEvent({ session_id: 's', emitter_id: 'em', seq: seq++, timestamp: new Date(T0 + ms).toISOString(), context: {}, ...(rest as object) }) as unknown as AgentEvent;
};
const call = (ms: number, tool: string, status: 'ok' | 'error', attempt = 0, parent?: string) =>
  ev({ ms, event_type: 'tool_call', status, payload: { tool, input: { attempt }, latency_ms: 10 }, context: parent ? { parent_event_id: parent } : {} });

describe('buildRows', () => {
  it('folds consecutive calls of one tool into one row with count and failures, and unfolds on demand', () => {
    const start = ev({ ms: 0, event_type: 'session_start', payload: {} });
    const loop = [call(10, 'stripe.pay', 'error', 1), call(20, 'stripe.pay', 'error', 2), call(30, 'stripe.pay', 'ok', 3)];
    const after = call(40, 'ledger.record', 'ok');
    const { rows } = buildRows([start, ...loop, after]);
    expect(rows.map((r) => [r.label, r.count, r.failures, r.folded])).toEqual([
      ['session_start', 1, 0, false],
      ['stripe.pay', 3, 2, true],
      ['ledger.record', 1, 0, false],
    ]);
    const fold = rows[1]!;
    expect(fold.key).toBe(loop[0]!.event_id);
    expect(fold.main).toBe(loop[2]);
    expect(fold.startMs).toBe(10);
    expect(fold.latencyMs).toBe(30);
    const open = buildRows([start, ...loop, after], { unfolded: new Set([fold.key]) }).rows;
    expect(open.map((r) => [r.label, r.member])).toEqual([
      ['session_start', false],
      ['stripe.pay', false],
      ['stripe.pay', true],
      ['stripe.pay', true],
      ['stripe.pay', true],
      ['ledger.record', false],
    ]);
  });

  it('does not fold calls of different tools, or one call on its own', () => {
    const { rows } = buildRows([call(0, 'a', 'ok'), call(1, 'b', 'ok'), call(2, 'a', 'ok')]);
    expect(rows.map((r) => r.count)).toEqual([1, 1, 1]);
  });

  it('puts a sub-agent\'s steps under its delegation, even when the delegation was emitted after them', () => {
    const delegationId = 'evt_delegation';
    const child1 = call(110, 'web.search', 'ok', 0, delegationId);
    const child2 = call(120, 'web.fetch', 'ok', 0, delegationId);
    const deleg = ev({ ms: 100, event_type: 'delegation', event_id: delegationId, payload: { subagent_id: 'research', latency_ms: 50 } });
    const order = treeOrder([call(0, 'crm', 'ok'), child1, child2, deleg, call(200, 'ledger', 'ok')]);
    expect(order.map((o) => [o.e.event_type === 'delegation' ? 'delegation' : (o.e.payload.tool as string), o.depth])).toEqual([
      ['crm', 0],
      ['delegation', 0],
      ['web.search', 1],
      ['web.fetch', 1],
      ['ledger', 0],
    ]);
  });

  it('survives a parent cycle (hostile or corrupt context) without looping', () => {
    const a = ev({ ms: 0, event_type: 'custom', event_id: 'evt_a', payload: { name: 'a' }, context: { parent_event_id: 'evt_b' } });
    const b = ev({ ms: 1, event_type: 'custom', event_id: 'evt_b', payload: { name: 'b' }, context: { parent_event_id: 'evt_a' } });
    expect(treeOrder([a, b]).map((o) => o.e.event_id).sort()).toEqual(['evt_a', 'evt_b']);
  });

  it('nextError walks error rows forwards and backwards, wrapping around', () => {
    const { rows } = buildRows([call(0, 'a', 'ok'), call(1, 'b', 'error'), call(2, 'c', 'ok'), ev({ ms: 3, event_type: 'error', status: 'error', payload: { error: { name: 'X', message: 'y' } } })]);
    expect(nextError(rows, -1, 1)).toBe(1);
    expect(nextError(rows, 1, 1)).toBe(3);
    expect(nextError(rows, 3, 1)).toBe(1);
    expect(nextError(rows, 1, -1)).toBe(3);
    expect(nextError(buildRows([call(0, 'a', 'ok')]).rows, 0, 1)).toBe(-1);
  });
});
