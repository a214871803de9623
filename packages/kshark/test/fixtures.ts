import { join } from 'node:path';
import { newEventId, type AgentEvent } from '@agenttrace/contract';
import { makeEvent, repoRoot, runNode } from '../../../test-support/stack.js';

// The committed entry point, what `npx kshark` runs.
export const CLI = join(repoRoot, 'packages', 'kshark', 'bin', 'kshark.js');

/** Output an agent could return to attack the terminal: clear screen, set title, bidi override. */
export const HOSTILE = 'pwned\u001b[2J\u001b]0;evil-title\u0007 \u202Egnp.exe\u009b31m';

/**
 * A session with a research sub-agent (whose delegation event comes after its children, as the
 * tracer emits it), an LLM call with tokens and cost, a decision with reasoning, a failing tool
 * call, an error, and a tool output holding terminal escape sequences.
 */
export function sampleSession(sessionId: string, t0: number): AgentEvent[] {
  let seq = 0;
  const at = (ms: number) => new Date(t0 + ms).toISOString();
  const base = { session_id: sessionId, agent_id: 'invoice-agent', emitter_id: 'em_main' };
  const ev = (o: Partial<AgentEvent>): AgentEvent => makeEvent({ ...base, seq: seq++, context: {}, ...o });
  const delegationId = newEventId(t0 + 1000);
  return [
    ev({ event_type: 'session_start', timestamp: at(0), payload: {} }),
    ev({ event_type: 'tool_call', timestamp: at(500), payload: { tool: 'crm.get_customer', input: { customer_id: 'cus_1' }, output: { name: 'Acme' }, latency_ms: 40 } }),
    ev({ agent_id: 'research-agent', event_type: 'tool_call', timestamp: at(1100), payload: { tool: 'web.search', input: { q: 'acme' }, output: { hits: 3 }, latency_ms: 300 }, context: { parent_event_id: delegationId } }),
    ev({ agent_id: 'research-agent', event_type: 'llm_call', timestamp: at(1500), payload: { model: 'claude-sonnet-4-5', input: 'summarize', output: 'fine', input_tokens: 1200, output_tokens: 300, cost_usd: 0.0081, latency_ms: 900 }, context: { parent_event_id: delegationId, reasoning: 'need a summary' } }),
    ev({ event_id: delegationId, event_type: 'delegation', timestamp: at(1000), payload: { subagent_id: 'research-agent', task: { topic: 'acme' }, output: { ok: true }, latency_ms: 1500 } }),
    ev({ event_type: 'decision', timestamp: at(3000), payload: { action: 'skip_email', options: ['send_email', 'skip_email'] }, context: { reasoning: 'Customer disabled notifications', confidence: 0.89 } }),
    ev({ event_type: 'tool_call', timestamp: at(4000), payload: { tool: 'render.pdf', input: { id: 1 }, output: HOSTILE, latency_ms: 10 } }),
    ev({ event_type: 'tool_call', status: 'error', timestamp: at(5000), payload: { tool: 'stripe.create_payment', input: { amount: 4500 }, error: { name: 'StripeError', message: 'rate limited' }, latency_ms: 20 } }),
    ev({ event_type: 'error', status: 'error', timestamp: at(6000), payload: { error: { name: 'GiveUp', message: 'payment failed' } } }),
    ev({ event_type: 'session_end', status: 'error', timestamp: at(7000), payload: {} }),
  ];
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built kshark (asynchronously: see runNode). */
export async function kshark(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return runNode(CLI, args, { env: { ...process.env, NO_COLOR: '', ...env }, timeoutMs: 45_000 });
}
