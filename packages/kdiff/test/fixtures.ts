import { newEventId, type AgentEvent, type EventType } from '@agenttrace/contract';

/** Builds sessions event by event with realistic ids, clocks and seqs (which kdiff must ignore). */
export class SessionBuilder {
  readonly events: AgentEvent[] = [];
  readonly #sessionId: string;
  readonly #agentId: string;
  #t: number;
  #seq = 0;

  constructor(sessionId: string, agentId = 'invoice-agent', start = Date.parse('2026-01-15T14:00:00Z')) {
    this.#sessionId = sessionId;
    this.#agentId = agentId;
    this.#t = start;
  }

  add(type: EventType, payload: AgentEvent['payload'], extra: Partial<AgentEvent> = {}): AgentEvent {
    this.#t += 100 + (this.#seq % 7);
    const e: AgentEvent = {
      schema_version: 1,
      event_id: newEventId(this.#t),
      session_id: this.#sessionId,
      agent_id: this.#agentId,
      emitter_id: `em_${this.#sessionId}`,
      seq: this.#seq++,
      timestamp: new Date(this.#t).toISOString(),
      event_type: type,
      status: 'ok',
      payload,
      context: {},
      ...extra,
    };
    this.events.push(e);
    return e;
  }

  start(): this {
    this.add('session_start', {});
    return this;
  }

  tool(tool: string, input: unknown, output: unknown = { ok: true }, extra: Partial<AgentEvent> = {}, latency = 100): this {
    this.add('tool_call', { tool, input, output, latency_ms: latency }, extra);
    return this;
  }

  failedTool(tool: string, input: unknown, message: string, latency = 50): this {
    this.add('tool_call', { tool, input, error: { name: 'ToolError', message, stack: `ToolError: ${message}\n    at x (/app/${this.#sessionId}.js:1:1)` }, latency_ms: latency }, { status: 'error' });
    return this;
  }

  llm(model: string, input: unknown, output: unknown, cost = 0.001, latency = 800, extra: Partial<AgentEvent> = {}): this {
    this.add('llm_call', { model, input, output, input_tokens: 100, output_tokens: 20, cost_usd: cost, latency_ms: latency }, extra);
    return this;
  }

  decision(action: string, reasoning: string, confidence = 0.9, options?: string[]): this {
    this.add('decision', options ? { action, options } : { action }, { context: { reasoning, confidence } });
    return this;
  }

  end(status: 'ok' | 'error' = 'ok'): this {
    this.add('session_end', { status }, { status });
    return this;
  }
}

/** The invoice flow both sessions of most tests share. */
export function invoiceSession(sessionId: string, opts: { amount?: number; decision?: string; requestId?: string; retries?: number; latency?: number } = {}): AgentEvent[] {
  const s = new SessionBuilder(sessionId).start();
  s.tool('crm.lookup', { customer_id: 'cus_1' }, { name: 'ACME', request_id: opts.requestId ?? 'req_1' });
  s.llm('claude-sonnet-4-5', { prompt: 'Draft the invoice for ACME' }, 'Invoice drafted', 0.0081);
  for (let i = 0; i < (opts.retries ?? 0); i++) s.failedTool('stripe.create_invoice', { customer_id: 'cus_1', amount: opts.amount ?? 4500 }, 'rate limited');
  s.tool('stripe.create_invoice', { customer_id: 'cus_1', amount: opts.amount ?? 4500 }, { invoice_id: 'inv_1' }, { context: { reasoning: 'Milestone 2 completion', confidence: 0.94 } }, opts.latency ?? 300);
  s.decision(opts.decision ?? 'skip_email', 'Customer disabled notifications', 0.89, ['send_email', 'skip_email']);
  s.tool('ledger.record', { invoice: 'inv_1' });
  s.tool('slack.notify', { channel: '#billing' });
  return s.end().events;
}
