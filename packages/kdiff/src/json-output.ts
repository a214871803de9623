/**
 * The machine-readable result (format kdiff.compare.v1, documented in docs/kdiff.md). Values
 * from events are kept as JSON values; JSON escaping keeps control characters out of terminals.
 */
import type { Comparison, DiffEntry, SideTotals } from './compare.js';
import type { Step } from './steps.js';
import { storyText, type StepRange, type StoryItem, type StructuralFact } from './story.js';

export const COMPARE_FORMAT = 'kdiff.compare.v1';

export interface SideDescription {
  /** `session` or `expected`. */
  kind: 'session' | 'expected';
  /** Session id, or the expected-steps file name. */
  name: string;
  source?: string;
  events?: number;
  warnings: string[];
}

function stepJson(s: Step | undefined): Record<string, unknown> | null {
  if (!s) return null;
  const out: Record<string, unknown> = { index: s.index, position: s.position, event_type: s.eventType, label: s.label };
  if (s.agentId !== undefined) out.agent_id = s.agentId;
  if (s.status !== undefined) out.status = s.status;
  if (s.event) out.event_id = s.event.event_id;
  if (s.depth > 0) out.depth = s.depth;
  if (s.latencyMs !== undefined) out.latency_ms = s.latencyMs;
  if (s.costUsd !== undefined) out.cost_usd = s.costUsd;
  return out;
}

function detailJson(s: Step | undefined): Record<string, unknown> | null {
  const base = stepJson(s);
  if (!base || !s) return base;
  if (s.model !== undefined) base.model = s.model;
  if (s.confidence !== undefined) base.confidence = s.confidence;
  if (s.reasoning !== undefined) base.reasoning = s.reasoning;
  return base;
}

function entryJson(e: DiffEntry): Record<string, unknown> {
  const out: Record<string, unknown> = { op: e.op, a: stepJson(e.a), b: stepJson(e.b) };
  if (e.op === 'changed') {
    out.changes = e.changes;
    if (e.changesOmitted > 0) out.changes_omitted = e.changesOmitted;
  }
  if (e.op !== 'same') out.structural = e.structural === true;
  if (e.latencyDeltaMs !== undefined) out.latency_delta_ms = e.latencyDeltaMs;
  if (e.costDeltaUsd !== undefined) out.cost_delta_usd = e.costDeltaUsd;
  return out;
}

const rangeJson = (r: StepRange | undefined): Record<string, number> | null => (r ? { from: r.from, to: r.to } : null);

function factJson(f: StructuralFact): Record<string, unknown> {
  const out: Record<string, unknown> = { field: f.field, path: f.path };
  if (f.a !== undefined) out.a = f.a;
  if (f.b !== undefined) out.b = f.b;
  return out;
}

function storyJson(cmp: Comparison, item: StoryItem): Record<string, unknown> {
  const e = cmp.entries[item.entry]!;
  const out: Record<string, unknown> = { kind: item.kind, entry: item.entry, text: storyText(item, e.a, e.b), a: rangeJson(item.a), b: rangeJson(item.b) };
  if (item.kind === 'changed') out.facts = item.facts.map(factJson);
  if (item.loop) {
    const l = item.loop;
    out.loop = { side: l.side, event_type: l.eventType, label: l.label, agent_id: l.agentId ?? null, calls: l.calls, failed: l.failed, other_calls: l.otherCalls };
  }
  if (item.steps.length > 0) out.steps = item.steps.length;
  return out;
}

function totalsJson(t: SideTotals): Record<string, unknown> {
  return {
    steps: t.steps,
    latency_ms: t.latencyMs,
    cost_usd: t.costUsd,
    errors: t.errors,
    first_error: stepJson(t.firstError),
    outcome: t.outcome ?? null,
  };
}

/** The comparison as one JSON document. `entries` holds every aligned step, matching ones included. */
export function comparisonJson(cmp: Comparison, a: SideDescription, b: SideDescription): Record<string, unknown> {
  const s = cmp.summary;
  const d = cmp.divergence;
  return {
    format: COMPARE_FORMAT,
    mode: cmp.mode,
    identical: cmp.identical,
    a,
    b,
    options: {
      ignore: cmp.options.ignore,
      default_ignore: cmp.options.defaultIgnore,
      types: cmp.options.types ?? null,
      agents: cmp.options.agents ?? null,
      context: cmp.options.context,
    },
    alignment: cmp.alignment,
    summary: {
      same: s.same,
      changed: s.changed,
      only_in_a: s.onlyInA,
      only_in_b: s.onlyInB,
      a: totalsJson(s.a),
      b: totalsJson(s.b),
      latency_delta_ms: s.latencyDeltaMs,
      cost_delta_usd: s.costDeltaUsd,
      error_only_in: s.errorOnlyIn ?? null,
      structural: s.structural,
      data_only: s.dataOnly,
    },
    story: cmp.story.map((item) => storyJson(cmp, item)),
    divergence: d
      ? {
          entry: d.entry,
          op: cmp.entries[d.entry]!.op,
          structural: d.structural,
          text: d.story ? storyText(d.story, cmp.entries[d.entry]!.a, cmp.entries[d.entry]!.b) : null,
          facts: d.facts.map(factJson),
          context: d.context.map(entryJson),
          a: detailJson(d.a),
          b: detailJson(d.b),
          changes: d.changes,
          ...(d.changesOmitted > 0 ? { changes_omitted: d.changesOmitted } : {}),
        }
      : null,
    entries: cmp.entries.map(entryJson),
  };
}
