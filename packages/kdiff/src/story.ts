/**
 * The story of a comparison: which differences change what the agent did (structural) and which
 * only carry per-run data. Two runs of one agent always differ in ids, amounts, customer names and
 * generated text; the reader wants the step where the agent took another path (another decision,
 * a step only one run took, a call that failed, a loop) first, and the data after it.
 *
 * Structural: a step only one side took, and in an aligned pair a change of status, of the error's
 * kind (name, code), of a decision's action or choice, of the outcome of session_end, of the model
 * of an LLM call or of the sub-agent of a delegation. The step type, agent and tool are part of a
 * step's kind, so a pair never differs in them: steps of another type or tool are one-sided.
 * Everything else (inputs, outputs, reasoning, error messages, options) is data.
 */
import { deepEqual, getPath, type PathSegment } from './paths.js';
import type { Step } from './steps.js';

/** A field whose change makes an aligned pair a structural difference. */
export interface StructuralFact {
  /** What it is, for the reader: `status`, `decision`, `outcome`, `error`, `model`, `sub-agent`. */
  field: 'status' | 'decision' | 'outcome' | 'error' | 'model' | 'sub-agent';
  /** The path as kdiff prints it (`payload.action`). */
  path: string;
  a: unknown;
  b: unknown;
}

interface StructuralPath {
  field: StructuralFact['field'];
  path: string;
  segments: readonly PathSegment[];
}

const sp = (field: StructuralFact['field'], path: string): StructuralPath => ({ field, path, segments: path.split('.') });

const COMMON: readonly StructuralPath[] = [sp('status', 'status'), sp('error', 'payload.error.name'), sp('error', 'payload.error.code')];

/** Per event type, the paths (besides status and the error's kind) that say what the step did. */
const BY_TYPE: Readonly<Record<string, readonly StructuralPath[]>> = {
  decision: [sp('decision', 'payload.name'), sp('decision', 'payload.decision'), sp('decision', 'payload.action'), sp('decision', 'payload.choice')],
  session_end: [sp('outcome', 'payload.status')],
  llm_call: [sp('model', 'payload.model')],
  delegation: [sp('sub-agent', 'payload.subagent_id')],
};

/** The paths of `eventType` that are structural (as printed in a field diff). */
export function structuralPaths(eventType: string): string[] {
  return [...COMMON, ...(BY_TYPE[eventType] ?? [])].map((p) => p.path);
}

/**
 * The structural differences of an aligned pair, read from both (pruned) views directly, so an
 * ignored field (`--ignore payload.action`) is never structural and the cap on listed field
 * changes cannot hide one.
 */
export function structuralFacts(a: Step, b: Step): StructuralFact[] {
  const out: StructuralFact[] = [];
  for (const p of [...COMMON, ...(BY_TYPE[a.eventType] ?? [])]) {
    const va = getPath(a.view, p.segments);
    const vb = getPath(b.view, p.segments);
    // An error on one side only is told by the status; its kind matters when both failed.
    if (p.field === 'error' && (va === undefined || vb === undefined)) continue;
    if (!deepEqual(va, vb)) out.push({ field: p.field, path: p.path, a: va, b: vb });
  }
  return out;
}

/** Is a printed field-change path (`payload.error.name`, `status`) one of the structural ones? */
export function isStructuralPath(eventType: string, path: string): boolean {
  return structuralPaths(eventType).includes(path);
}

/** Inclusive range of step indexes (0-based) on one side. */
export interface StepRange {
  from: number;
  to: number;
}

/** Consecutive calls of one kind on one side (a retry loop when it fails again and again). */
export interface LoopFact {
  side: 'a' | 'b';
  eventType: string;
  /** Tool name (or model, custom name: the step's label). */
  label: string;
  agentId: string | undefined;
  calls: number;
  failed: number;
  /** Calls of the same kind in a row at the same place on the other side (0 when it has none). */
  otherCalls: number;
  /** The first and last step of the run on each side. */
  range: StepRange;
  otherRange: StepRange | undefined;
}

export type StoryKind = 'changed' | 'only_in_a' | 'only_in_b' | 'loop';

/** One structural difference, in alignment order. */
export interface StoryItem {
  kind: StoryKind;
  /** Index into the comparison's entries of its first entry. */
  entry: number;
  /** Steps of each side it covers (undefined: none on that side). */
  a: StepRange | undefined;
  b: StepRange | undefined;
  /** `changed`: what differs. */
  facts: StructuralFact[];
  /** `loop`: the run of calls. */
  loop: LoopFact | undefined;
  /** `only_in_a` / `only_in_b`: the one-sided steps (same kind, consecutive). */
  steps: Step[];
}

/** Fewer consecutive calls than this are listed as steps, not told as a loop. */
export const LOOP_MIN_CALLS = 3;

/** What the story needs from an aligned entry (compare.ts's DiffEntry has it). */
export interface StoryEntry {
  op: 'same' | 'changed' | 'removed' | 'added';
  a?: Step | undefined;
  b?: Step | undefined;
  structural?: boolean;
}

/** Extends a run on one side to the neighbouring steps of the same kind: the whole run of calls. */
function extendRun(steps: readonly Step[], from: number, to: number): StepRange {
  const kind = steps[from]!.kind;
  let f = from;
  let t = to;
  while (f > 0 && steps[f - 1]!.kind === kind) f--;
  while (t + 1 < steps.length && steps[t + 1]!.kind === kind) t++;
  return { from: f, to: t };
}

/**
 * Builds the story from the aligned entries. One-sided entries are grouped by side and kind;
 * a group that is part of a run of at least LOOP_MIN_CALLS calls of one kind on its side (the
 * run counted across aligned steps too, so a loop whose last call succeeded and matched the other
 * side counts that call) is told as one loop.
 */
export function buildStory(entries: readonly StoryEntry[], aSteps: readonly Step[], bSteps: readonly Step[], facts: (i: number) => StructuralFact[]): StoryItem[] {
  const items: StoryItem[] = [];
  // Where each step of a side is aligned on the other side, to find the other side's run of a loop.
  const partnerOfA = new Map<number, number>();
  const partnerOfB = new Map<number, number>();
  entries.forEach((e) => {
    if (e.a && e.b) {
      partnerOfA.set(e.a.index, e.b.index);
      partnerOfB.set(e.b.index, e.a.index);
    }
  });
  const told = { a: -1, b: -1 };
  let i = 0;
  while (i < entries.length) {
    const e = entries[i]!;
    if (e.op === 'same' || (e.op === 'changed' && e.structural !== true)) {
      i++;
      continue;
    }
    if (e.op === 'changed') {
      items.push({ kind: 'changed', entry: i, a: { from: e.a!.index, to: e.a!.index }, b: { from: e.b!.index, to: e.b!.index }, facts: facts(i), loop: undefined, steps: [] });
      i++;
      continue;
    }
    // A block of one-sided entries of one side: loops in it are told as loops, the other steps
    // together as one item.
    const side: 'a' | 'b' = e.op === 'removed' ? 'a' : 'b';
    const steps = side === 'a' ? aSteps : bSteps;
    const other = side === 'a' ? bSteps : aSteps;
    const partner = side === 'a' ? partnerOfA : partnerOfB;
    let pending: Step[] = [];
    let pendingEntry = i;
    const flush = (): void => {
      if (pending.length === 0) return;
      const range = { from: pending[0]!.index, to: pending[pending.length - 1]!.index };
      items.push({ kind: side === 'a' ? 'only_in_a' : 'only_in_b', entry: pendingEntry, a: side === 'a' ? range : undefined, b: side === 'b' ? range : undefined, facts: [], loop: undefined, steps: pending });
      pending = [];
    };
    while (i < entries.length && entries[i]!.op === e.op) {
      const first = (entries[i]!.a ?? entries[i]!.b)!;
      let j = i + 1;
      while (j < entries.length && entries[j]!.op === e.op && (entries[j]!.a ?? entries[j]!.b)!.kind === first.kind) j++;
      const last = (entries[j - 1]!.a ?? entries[j - 1]!.b)!;
      const whole = extendRun(steps, first.index, last.index);
      const calls = whole.to - whole.from + 1;
      if (whole.to <= told[side]) {
        // Already told as part of a loop found earlier.
      } else if (calls >= LOOP_MIN_CALLS && first.eventType !== 'session_start' && first.eventType !== 'session_end') {
        flush();
        let failed = 0;
        for (let k = whole.from; k <= whole.to; k++) if (steps[k]!.status === 'error') failed++;
        let otherRange: StepRange | undefined;
        for (let k = whole.from; k <= whole.to && !otherRange; k++) {
          const p = partner.get(k);
          if (p !== undefined && other[p]!.kind === first.kind) otherRange = extendRun(other, p, p);
        }
        items.push({
          kind: 'loop',
          entry: i,
          a: side === 'a' ? whole : otherRange,
          b: side === 'b' ? whole : otherRange,
          facts: [],
          loop: { side, eventType: first.eventType, label: first.label, agentId: first.agentId, calls, failed, otherCalls: otherRange ? otherRange.to - otherRange.from + 1 : 0, range: whole, otherRange },
          steps: [],
        });
        told[side] = whole.to;
      } else {
        if (pending.length === 0) pendingEntry = i;
        for (let k = i; k < j; k++) pending.push((entries[k]!.a ?? entries[k]!.b)!);
      }
      i = j;
    }
    flush();
  }
  return items;
}

/** Formats values of a story line; the text view passes a sanitizer, JSON the plain JSON text. */
export type ValueFormat = (value: unknown) => string;

const plainValue: ValueFormat = (v) => (v === undefined ? '(absent)' : typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v)));

/** A decision's name when it has one (`route`), so the line reads "decision route: escalate vs approve". */
function decisionName(s: Step | undefined): unknown {
  const p = (s?.view.payload ?? {}) as Record<string, unknown>;
  return p.name ?? p.decision;
}

function stepWord(s: Step, fmt: ValueFormat): string {
  if (s.eventType === 'tool_call') return `tool ${fmt(s.label)}`;
  if (s.eventType === 'error') {
    // The error's kind; its message is per-run text.
    const err = (s.view.payload as { error?: { name?: unknown } } | undefined)?.error;
    return err && err.name !== undefined ? `error ${fmt(err.name)}` : 'error';
  }
  return s.label ? `${s.eventType} ${fmt(s.label)}` : s.eventType;
}

/** One-sided steps named in a story line; the rest are counted. */
const STEPS_NAMED = 5;

const times = (n: number): string => `${n} time${n === 1 ? '' : 's'}`;

/**
 * One line per story item, the way a person would say it:
 * `decision route: escalate vs approve`, `tool lookup_invoice called 847 times in a row in A (846 failed); 1 time in B`.
 */
export function storyText(item: StoryItem, aStep: Step | undefined, bStep: Step | undefined, fmt: ValueFormat = plainValue): string {
  if (item.kind === 'loop') {
    const l = item.loop!;
    const side = l.side.toUpperCase();
    const otherSide = l.side === 'a' ? 'B' : 'A';
    const what = l.eventType === 'tool_call' ? `tool ${fmt(l.label)}` : `${l.eventType} ${fmt(l.label)}`;
    return `${what} called ${l.calls} times in a row in ${side} (${l.failed} failed); ${times(l.otherCalls)} in ${otherSide}`;
  }
  if (item.kind === 'only_in_a' || item.kind === 'only_in_b') {
    const side = item.kind === 'only_in_a' ? 'A' : 'B';
    const failed = item.steps.filter((x) => x.status === 'error' || x.eventType === 'error').length;
    const n = item.steps.length;
    const fail = failed > 0 ? ` (${failed} failed)` : '';
    if (n === 1) return `${stepWord(item.steps[0]!, fmt)} only in ${side}${item.steps[0]!.status === 'error' && item.steps[0]!.eventType !== 'error' ? ' (failed)' : ''}`;
    const names = item.steps.slice(0, STEPS_NAMED).map((x) => stepWord(x, fmt));
    return `${n} steps only in ${side}${fail}: ${names.join(', ')}${n > STEPS_NAMED ? `, … ${n - STEPS_NAMED} more` : ''}`;
  }
  const parts: string[] = [];
  const decision = item.facts.filter((f) => f.field === 'decision');
  if (decision.length > 0) {
    const name = decisionName(aStep) ?? decisionName(bStep);
    const choice = decision.find((f) => f.path !== 'payload.name' && f.path !== 'payload.decision') ?? decision[0]!;
    parts.push(`decision${name !== undefined && decision.every((f) => f.path !== 'payload.name' && f.path !== 'payload.decision') ? ` ${fmt(name)}` : ''}: ${fmt(choice.a)} vs ${fmt(choice.b)}`);
  }
  for (const f of item.facts) {
    if (f.field === 'decision') continue;
    if (f.field === 'outcome') parts.push(`outcome: ${fmt(f.a)} vs ${fmt(f.b)}`);
    else if (f.field === 'status') {
      // session_end's status is its outcome; say it once.
      if (aStep?.eventType === 'session_end' && item.facts.some((x) => x.field === 'outcome')) continue;
      parts.push(aStep?.eventType === 'session_end' ? `outcome: ${fmt(f.a)} vs ${fmt(f.b)}` : `${stepWord(aStep!, fmt)}: ${fmt(f.a)} vs ${fmt(f.b)}`);
    } else if (f.field === 'error') parts.push(`${aStep ? `${stepWord(aStep, fmt)} ` : ''}error ${f.path.endsWith('code') ? 'code' : 'kind'}: ${fmt(f.a)} vs ${fmt(f.b)}`);
    else if (f.field === 'model') parts.push(`model: ${fmt(f.a)} vs ${fmt(f.b)}`);
    else parts.push(`sub-agent: ${fmt(f.a)} vs ${fmt(f.b)}`);
  }
  return parts.join('; ');
}
