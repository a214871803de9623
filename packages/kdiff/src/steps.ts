/**
 * A step is one event as kdiff compares it: its identity (what kind of thing it did and with what
 * input, never its ids or clocks), the pruned view that is diffed field by field, and the measured
 * figures (latency, cost) that are reported as deltas.
 */
import type { AgentEvent } from '@agenttrace/contract';
import { prune, stableStringify, type PathPattern } from './paths.js';

export interface Step {
  /** Position among the compared steps of its side (after --type/--agent filters), 0-based. */
  index: number;
  /** Position in the whole session (or in the expected-steps file), 0-based. */
  position: number;
  eventType: string;
  agentId: string | undefined;
  /** Short human description: tool, model, action, sub-agent, error, custom name. */
  label: string;
  status: string | undefined;
  /** The event without ignored fields: what is compared. */
  view: Record<string, unknown>;
  /** Type + agent (+ tool / custom name): steps of one kind are paired as "changed" when their inputs differ. */
  kind: string;
  /** Kind + status + normalized input: equal signatures are the same step. */
  signature: string;
  /** The parts the signature is made of (undefined = not given, matches anything in expected-steps mode). */
  parts: SignatureParts;
  latencyMs: number | undefined;
  costUsd: number | undefined;
  /** Nesting under delegations (0 = the session's own agent). */
  depth: number;
  /** The model in effect: the step's own, else the last LLM call's before it on this side. */
  model: string | undefined;
  reasoning: unknown;
  confidence: number | undefined;
  /** The original event (absent for expected steps). */
  event: AgentEvent | undefined;
}

export interface SignatureParts {
  eventType: string;
  agentId: string | undefined;
  /**
   * Part of the identity so that in a retry loop the failed attempts, not the final successful
   * call, are the inserted steps; a lone failed call still pairs with its successful counterpart
   * as "changed" because pairing inside a hunk goes by kind.
   */
  status: string | undefined;
  kindLabel: string | undefined;
  what: unknown;
}

type Payload = Record<string, unknown>;

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

function errorOf(p: Payload): Record<string, unknown> | undefined {
  const e = p.error;
  return typeof e === 'object' && e !== null ? (e as Record<string, unknown>) : undefined;
}

/** What a step did, per event type: the input part of its signature. */
function whatOf(eventType: string, p: Payload): unknown {
  switch (eventType) {
    case 'tool_call':
      return p.input;
    case 'llm_call':
      return { model: p.model, input: p.input };
    case 'decision':
      return { action: p.action, options: p.options };
    case 'delegation':
      return { subagent_id: p.subagent_id, task: p.task };
    case 'error': {
      const e = errorOf(p);
      return e ? { name: e.name, message: e.message } : undefined;
    }
    case 'custom': {
      const { name: _name, ...rest } = p;
      void _name;
      return Object.keys(rest).length > 0 ? rest : undefined;
    }
    default:
      // session_start / session_end always align with each other; their fields are diffed.
      return undefined;
  }
}

function kindLabelOf(eventType: string, p: Payload): string | undefined {
  if (eventType === 'tool_call') return str(p.tool);
  if (eventType === 'custom') return str(p.name);
  return '';
}

/** The one-line description shown for a step. */
export function labelOf(eventType: string, p: Payload, status?: string): string {
  switch (eventType) {
    case 'tool_call':
      return str(p.tool) ?? '?';
    case 'llm_call':
      return str(p.model) ?? '?';
    case 'decision':
      return str(p.action) ?? '?';
    case 'delegation':
      return `→ ${str(p.subagent_id) ?? '?'}`;
    case 'error': {
      const e = errorOf(p);
      return e ? `${str(e.name) ?? 'Error'}: ${str(e.message) ?? ''}` : '?';
    }
    case 'custom':
      return str(p.name) ?? '?';
    case 'session_end':
      return str(p.status) ?? status ?? '';
    default:
      return '';
  }
}

export function signatureParts(view: Record<string, unknown>, partial: boolean): SignatureParts {
  const eventType = String(view.event_type);
  const p = (typeof view.payload === 'object' && view.payload !== null ? view.payload : {}) as Payload;
  const hasPayload = typeof view.payload === 'object' && view.payload !== null;
  return {
    eventType,
    agentId: str(view.agent_id),
    status: str(view.status),
    // In an expected step a missing payload means "any": the label and input are then wildcards.
    kindLabel: partial ? (hasPayload ? kindLabelOf(eventType, p) : undefined) : (kindLabelOf(eventType, p) ?? ''),
    what: partial && !hasPayload ? undefined : whatOf(eventType, p),
  };
}

function kindKey(s: SignatureParts): string {
  return `${s.eventType}\u0000${s.agentId ?? ''}\u0000${s.kindLabel ?? ''}`;
}

/** Nesting depth of each event under delegations, from context.parent_event_id (bounded: ids may form a cycle). */
function depths(events: readonly AgentEvent[]): Map<string, number> {
  const parent = new Map<string, string>();
  for (const e of events) {
    const pid = e.context?.parent_event_id;
    if (typeof pid === 'string') parent.set(e.event_id, pid);
  }
  const out = new Map<string, number>();
  for (const e of events) {
    let d = 0;
    let id = parent.get(e.event_id);
    while (id !== undefined && d < 32) {
      d++;
      id = parent.get(id);
    }
    out.set(e.event_id, d);
  }
  return out;
}

/** Keeps the events that pass the type and agent filters. */
export function filterEvents(events: readonly AgentEvent[], types: readonly string[] | undefined, agents: readonly string[] | undefined): AgentEvent[] {
  if (!types && !agents) return events.slice();
  return events.filter((e) => (!types || types.includes(e.event_type)) && (!agents || agents.includes(e.agent_id)));
}

/** Turns a session's events into steps (filters applied, ignored fields pruned). */
export function stepsFromEvents(events: readonly AgentEvent[], patterns: readonly PathPattern[], types?: readonly string[], agents?: readonly string[]): Step[] {
  const depth = depths(events);
  const out: Step[] = [];
  let lastModel: string | undefined;
  events.forEach((e, position) => {
    const p = (e.payload ?? {}) as Payload;
    const ownModel = str(e.context?.model) ?? (e.event_type === 'llm_call' ? str(p.model) : undefined);
    if (e.event_type === 'llm_call' && str(p.model)) lastModel = str(p.model);
    if ((types && !types.includes(e.event_type)) || (agents && !agents.includes(e.agent_id))) return;
    const view = prune(e as unknown as Record<string, unknown>, patterns);
    const parts = signatureParts(view, false);
    out.push({
      index: out.length,
      position,
      eventType: e.event_type,
      agentId: e.agent_id,
      label: labelOf(e.event_type, p, e.status),
      status: e.status,
      view,
      kind: kindKey(parts),
      signature: `${kindKey(parts)}\u0000${parts.status ?? ''}\u0000${stableStringify(parts.what)}`,
      parts,
      latencyMs: num(p.latency_ms),
      costUsd: num(p.cost_usd),
      depth: depth.get(e.event_id) ?? 0,
      model: ownModel ?? lastModel,
      reasoning: e.context?.reasoning,
      confidence: num(e.context?.confidence),
      event: e,
    });
  });
  return out;
}

/** Turns expected steps (partial events from a kdiff.expected.v1 file) into steps. */
export function stepsFromExpected(expected: ReadonlyArray<Record<string, unknown>>, patterns: readonly PathPattern[]): Step[] {
  return expected.map((raw, i) => {
    const view = prune(raw, patterns);
    const parts = signatureParts(view, true);
    const p = (typeof view.payload === 'object' && view.payload !== null ? view.payload : {}) as Payload;
    const ctx = (typeof view.context === 'object' && view.context !== null ? view.context : {}) as Record<string, unknown>;
    return {
      index: i,
      position: i,
      eventType: parts.eventType,
      agentId: parts.agentId,
      label: labelOf(parts.eventType, p, str(view.status)),
      status: str(view.status),
      view,
      kind: kindKey(parts),
      signature: `${kindKey(parts)}\u0000${parts.status ?? ''}\u0000${stableStringify(parts.what)}`,
      parts,
      latencyMs: undefined,
      costUsd: undefined,
      depth: 0,
      model: str(ctx.model) ?? (parts.eventType === 'llm_call' ? str(p.model) : undefined),
      reasoning: ctx.reasoning,
      confidence: num(ctx.confidence),
      event: undefined,
    };
  });
}
