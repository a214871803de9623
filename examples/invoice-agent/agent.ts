/**
 * A simulated invoice agent, traced with @agenttrace/tracer. Nothing here calls a real model or
 * payment API: each "call" waits a few milliseconds and returns plausible data, so the traced
 * sessions look like real ones (tools, LLM calls with tokens and cost, decisions with reasoning,
 * research and writing sub-agents, large payloads, failures).
 */
import { AgentTracer, type TracerError } from '@agenttrace/tracer';

export interface AgentRunOptions {
  sessionId: string;
  topic: string;
  /** Deterministic variety: the same seed gives the same session shape. */
  seed: number;
  onTracerError: (err: TracerError) => void;
}

const MODEL = 'claude-sonnet-4-5';
const CUSTOMERS = ['Acme Corp', 'Globex', 'Initech', 'Umbrella Health', 'Stark Logistics', 'Wayne Foods', 'Hooli', 'Vandelay Imports'];

/** A small deterministic PRNG so runs are reproducible. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x1_0000_0000;
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Price of an LLM call at $3 / $15 per million input / output tokens. */
const cost = (inTok: number, outTok: number) => Math.round((inTok * 3 + outTok * 15)) / 1e6;

class ToolError extends Error {
  readonly code: string;
  constructor(name: string, message: string, code: string) {
    super(message);
    this.name = name;
    this.code = code;
  }
}

export async function runInvoiceSession(o: AgentRunOptions): Promise<'ok' | 'error'> {
  const r = rng(o.seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
  const customer = pick(CUSTOMERS);
  const customerId = `cus_${Math.floor(r() * 1e6).toString(36)}`;
  const amount = Math.round(500 + r() * 20_000);
  const tracer = new AgentTracer({ sessionId: o.sessionId, agentId: 'invoice-agent', topic: o.topic, onError: o.onTracerError, handleExit: false });
  let status: 'ok' | 'error' = 'ok';
  try {
    const cust = await tracer.trackToolCall('crm.get_customer', { customer_id: customerId }, async () => {
      await sleep(2 + r() * 6);
      return { id: customerId, name: customer, plan: pick(['starter', 'growth', 'enterprise']), notifications: r() > 0.2 };
    });

    const history = await tracer.delegate('research-agent', { topic: `billing history of ${customer}` }, async () => {
      const found = await tracer.trackToolCall('billing.search_history', { customer_id: customerId, months: 12 }, async () => {
        await sleep(3 + r() * 8);
        return { invoices: Math.floor(r() * 12), late_payments: Math.floor(r() * 3) };
      });
      const inTok = 800 + Math.floor(r() * 1200);
      const outTok = 120 + Math.floor(r() * 200);
      return tracer.trackLlmCall({ model: MODEL, input: `Summarize the payment behaviour of ${customer}: ${JSON.stringify(found)}` }, async () => {
        await sleep(5 + r() * 15);
        return { text: `${customer} pays on time ${found.late_payments === 0 ? 'always' : 'mostly'}; ${found.invoices} invoices in 12 months.`, late: found.late_payments };
      }, { usage: () => ({ inputTokens: inTok, outputTokens: outTok, costUsd: cost(inTok, outTok) }), reasoning: 'Need payment history before deciding on terms' });
    });

    const discount = history.late === 0 && amount > 5000;
    tracer.logDecision({
      action: discount ? 'apply_loyalty_discount' : 'standard_terms',
      reasoning: discount ? `No late payments in 12 months and amount ${amount} above 5000` : `History shows ${history.late} late payment(s) or a small amount`,
      confidence: Math.round((0.7 + r() * 0.29) * 100) / 100,
      options: ['apply_loyalty_discount', 'standard_terms'],
    });

    const total = discount ? Math.round(amount * 0.95) : amount;
    // One session in twelve carries a long itemized draft (well over 10 KB): the tracer offloads it to S3.
    const large = r() < 1 / 12;
    const draft = await tracer.delegate('writing-agent', { task: 'draft the invoice email', customer }, async () => {
      const lines = large ? 400 : 5;
      const inTok = 1500 + Math.floor(r() * 1500);
      const outTok = large ? 9000 : 300 + Math.floor(r() * 300);
      return tracer.trackLlmCall({ model: MODEL, input: `Write an invoice email for ${customer}, total ${total} USD, ${lines} line items` }, async () => {
        await sleep(8 + r() * 20);
        const items = Array.from({ length: lines }, (_, i) => `  ${String(i + 1).padStart(3)}. Consulting hours, milestone ${(i % 7) + 1} — ${(total / lines).toFixed(2)} USD`);
        return { subject: `Invoice from Example Co for ${customer}`, body: `Dear ${customer} team,\n\nplease find your invoice below.\n${items.join('\n')}\n\nTotal: ${total} USD\n` };
      }, { usage: () => ({ inputTokens: inTok, outputTokens: outTok, costUsd: cost(inTok, outTok) }), reasoning: 'Customer-facing text is written by the writing sub-agent' });
    });

    const invoice = await tracer.trackToolCall('stripe.create_invoice', { customer_id: customerId, amount: total, currency: 'usd' }, async () => {
      await sleep(4 + r() * 10);
      return { invoice_id: `in_${Math.floor(r() * 1e9).toString(36)}`, status: 'open' };
    }, { reasoning: discount ? 'Loyalty discount applied' : 'Standard terms', confidence: 0.94 });

    if (cust.notifications) {
      try {
        await tracer.trackToolCall('email.send', { to: `billing@${customer.toLowerCase().replace(/\s+/g, '')}.example`, subject: draft.subject }, async () => {
          await sleep(2 + r() * 6);
          // Roughly one session in fifteen hits a mail outage; the agent records it and stops.
          if (r() < 1 / 15) throw new ToolError('SmtpError', 'connection to smtp.example timed out after 5000 ms', 'ETIMEDOUT');
          return { message_id: `msg_${Math.floor(r() * 1e9).toString(36)}` };
        });
      } catch (err) {
        tracer.logError(err, { reasoning: 'Invoice created but the customer was not notified; a human must follow up' });
        status = 'error';
      }
    } else {
      tracer.logDecision({ action: 'skip_email', reasoning: 'Customer disabled notifications', confidence: 0.89, options: ['send_email', 'skip_email'] });
    }
    if (status === 'ok') tracer.logEvent('invoice_ready', { invoice_id: invoice.invoice_id, total });
  } catch (err) {
    tracer.logError(err);
    status = 'error';
  }
  tracer.endSession({ status });
  await tracer.close();
  return status;
}

/**
 * The incident: a payment call fails with a rate-limit error and the agent retries it at once,
 * again and again, without backoff, hundreds of times, before giving up.
 */
export async function runIncidentSession(o: AgentRunOptions & { retries: number }): Promise<void> {
  const tracer = new AgentTracer({ sessionId: o.sessionId, agentId: 'invoice-agent', topic: o.topic, onError: o.onTracerError, handleExit: false });
  const customerId = 'cus_incident42';
  await tracer.trackToolCall('crm.get_customer', { customer_id: customerId }, async () => {
    await sleep(4);
    return { id: customerId, name: 'Acme Corp', plan: 'enterprise', notifications: true };
  });
  const inTok = 1800;
  const outTok = 240;
  await tracer.trackLlmCall({ model: MODEL, input: 'Plan how to collect the overdue balance of 48,200 USD for Acme Corp' }, async () => {
    await sleep(12);
    return { plan: ['create invoice', 'charge card on file', 'email receipt'] };
  }, { usage: () => ({ inputTokens: inTok, outputTokens: outTok, costUsd: cost(inTok, outTok) }), reasoning: 'Overdue balance: charge the card on file' });
  tracer.logDecision({ action: 'charge_card_on_file', reasoning: 'Customer has a valid card on file and an overdue balance', confidence: 0.91, options: ['charge_card_on_file', 'send_payment_link'] });
  let attempt = 0;
  for (; attempt < o.retries; attempt++) {
    try {
      await tracer.trackToolCall('stripe.create_payment', { customer_id: customerId, amount: 48_200, currency: 'usd', attempt: attempt + 1 }, async () => {
        await sleep(12);
        throw new ToolError('StripeRateLimitError', 'Too many requests: rate limit exceeded for this API key (429)', 'rate_limit');
      }, { reasoning: attempt === 0 ? 'Charge the overdue balance' : 'Previous attempt failed; retrying immediately' });
    } catch {
      // The bug being reproduced: no backoff, no cap, no check of the error kind.
    }
  }
  tracer.logError(new ToolError('RetryBudgetExhausted', `stripe.create_payment failed ${attempt} times in a row; giving up`, 'retry_exhausted'), {
    reasoning: 'Hard-coded attempt limit reached',
  });
  tracer.endSession({ status: 'error', reason: 'payment retries exhausted' });
  await tracer.close();
}
