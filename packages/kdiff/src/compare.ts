/**
 * The comparison engine: aligns two step sequences, pairs the steps of each inserted/removed hunk
 * that are of the same kind (same tool, same agent) as "changed", diffs every pair field by field,
 * and summarizes. Pure: no I/O, so it is unit-tested and benchmarked on its own.
 */
import type { AgentEvent } from '@agenttrace/contract';
import { alignKeys, alignWith, intern, type AlignRun } from './align.js';
import { diffExpectedFields, diffFields, type FieldChange } from './field-diff.js';
import { resolveCompareOptions, type CompareOptions, type ResolvedCompareOptions } from './options.js';
import { deepEqual, subsetMatches } from './paths.js';
import { stepsFromEvents, stepsFromExpected, type SignatureParts, type Step } from './steps.js';
import { buildStory, structuralFacts, type StoryItem, type StructuralFact } from './story.js';

/** `same`: aligned and equal; `changed`: aligned, fields differ; `removed`: only in A; `added`: only in B. */
export type EntryOp = 'same' | 'changed' | 'removed' | 'added';

export interface DiffEntry {
  op: EntryOp;
  a?: Step;
  b?: Step;
  changes: FieldChange[];
  changesOmitted: number;
  /**
   * Set on every entry that is not `same`: true when it changes what the agent did (a step only
   * one side took; in a pair, see story.ts), false when the pair differs only in per-run data.
   */
  structural?: boolean;
  /** B minus A, when both sides measured it. */
  latencyDeltaMs?: number;
  costDeltaUsd?: number;
}

export interface SideTotals {
  steps: number;
  latencyMs: number;
  costUsd: number;
  errors: number;
  /** The first step that failed (status error or an error event). */
  firstError: Step | undefined;
  /** session_end's status when the session has one. */
  outcome: string | undefined;
}

export interface CompareSummary {
  same: number;
  changed: number;
  onlyInA: number;
  onlyInB: number;
  a: SideTotals;
  b: SideTotals;
  latencyDeltaMs: number;
  costDeltaUsd: number;
  /** Set when exactly one side has a failed step. */
  errorOnlyIn: 'a' | 'b' | undefined;
  /** Structural differences (items of the story). */
  structural: number;
  /** Changed pairs that differ only in per-run data (ids, amounts, text). */
  dataOnly: number;
}

export interface Divergence {
  /**
   * Index into `entries` of the first structural difference (the first story item); when the
   * sessions differ only in per-run data, of the first entry that is not `same`.
   */
  entry: number;
  /** False when no difference is structural (the divergence is then the first data difference). */
  structural: boolean;
  /** The story item the divergence starts (undefined when not structural). */
  story: StoryItem | undefined;
  /** For a changed pair: the structural fields that differ. */
  facts: StructuralFact[];
  /** The entries right before it (up to `context`): matching, or differing only in data. */
  context: DiffEntry[];
  /** The step each side took at the divergence (the next step of that side from there on). */
  a: Step | undefined;
  b: Step | undefined;
  changes: FieldChange[];
  changesOmitted: number;
}

export interface Comparison {
  mode: 'sessions' | 'expected';
  entries: DiffEntry[];
  summary: CompareSummary;
  divergence: Divergence | undefined;
  /** Every structural difference in alignment order: the divergence first, then what followed. */
  story: StoryItem[];
  identical: boolean;
  /** How the steps were aligned (see align.ts). */
  alignment: 'myers' | 'anchored';
  options: ResolvedCompareOptions;
}

function totals(steps: readonly Step[], events: readonly AgentEvent[] | undefined): SideTotals {
  let latencyMs = 0;
  let costUsd = 0;
  let errors = 0;
  let firstError: Step | undefined;
  for (const s of steps) {
    latencyMs += s.latencyMs ?? 0;
    costUsd += s.costUsd ?? 0;
    if (s.status === 'error' || s.eventType === 'error') {
      errors++;
      firstError ??= s;
    }
  }
  let outcome: string | undefined;
  if (events) {
    for (let i = events.length - 1; i >= 0; i--) {
      const e = events[i]!;
      if (e.event_type === 'session_end') {
        const st = (e.payload as { status?: unknown }).status;
        outcome = typeof st === 'string' ? st : e.status;
        break;
      }
    }
  }
  return { steps: steps.length, latencyMs, costUsd, errors, firstError, outcome };
}

function kindMatches(e: SignatureParts, s: SignatureParts): boolean {
  return e.eventType === s.eventType && (e.agentId === undefined || e.agentId === s.agentId) && (e.kindLabel === undefined || e.kindLabel === s.kindLabel);
}

interface Engine {
  /** Are two aligned steps identical (after ignores)? */
  same(a: Step, b: Step): boolean;
  fields(a: Step, b: Step, limit: number): { changes: FieldChange[]; omitted: number };
  align(a: Step[], b: Step[], maxEdit: number): { runs: AlignRun[]; method: 'myers' | 'anchored' };
  /** Structural differences of an aligned pair (see story.ts). */
  facts(a: Step, b: Step): StructuralFact[];
  /** Pairing inside a hunk: level 0 by kind and status, level 1 by kind alone. */
  alignKinds(a: Step[], b: Step[], maxEdit: number, level: number): AlignRun[] | undefined;
}

const KIND_LEVELS = 2;

const exactEngine: Engine = {
  same: (a, b) => deepEqual(a.view, b.view),
  fields: (a, b, limit) => diffFields(a.view, b.view, limit),
  facts: structuralFacts,
  align(a, b, maxEdit) {
    const table = new Map<string, number>();
    return alignKeys(intern(a.map((s) => s.signature), table), intern(b.map((s) => s.signature), table), maxEdit);
  },
  alignKinds(a, b, maxEdit, level) {
    const table = new Map<string, number>();
    const key = (s: Step): string => (level === 0 ? `${s.kind}\u0000${s.status ?? ''}` : s.kind);
    const r = alignKeys(intern(a.map(key), table), intern(b.map(key), table), maxEdit);
    return r.method === 'myers' ? r.runs : undefined;
  },
};

/** A = expected steps (partial), B = the session: only the fields A gives are compared. */
const expectedEngine: Engine = {
  same: (a, b) => subsetMatches(a.view, b.view),
  fields: (a, b, limit) => diffExpectedFields(a.view, b.view, limit),
  // An expected step pins only the fields it gives; a field it leaves out is never a difference.
  facts: (a, b) => structuralFacts(a, b).filter((f) => f.a !== undefined),
  align: (a, b, maxEdit) =>
    alignWith(a, b, (x, y) => kindMatches(x.parts, y.parts) && (x.parts.status === undefined || x.parts.status === y.parts.status) && subsetMatches(x.parts.what, y.parts.what), maxEdit),
  alignKinds(a, b, maxEdit, level) {
    const r = alignWith(a, b, (x, y) => kindMatches(x.parts, y.parts) && (level > 0 || x.parts.status === undefined || x.parts.status === y.parts.status), maxEdit);
    return r.method === 'myers' ? r.runs : undefined;
  },
};

function pairEntry(engine: Engine, a: Step, b: Step, o: ResolvedCompareOptions): DiffEntry {
  const entry: DiffEntry = { op: 'same', a, b, changes: [], changesOmitted: 0 };
  if (!engine.same(a, b)) {
    const d = engine.fields(a, b, o.maxFieldChanges);
    entry.op = 'changed';
    entry.changes = d.changes;
    entry.changesOmitted = d.omitted;
    entry.structural = engine.facts(a, b).length > 0;
  }
  if (a.latencyMs !== undefined && b.latencyMs !== undefined) entry.latencyDeltaMs = b.latencyMs - a.latencyMs;
  if (a.costUsd !== undefined && b.costUsd !== undefined) entry.costDeltaUsd = b.costUsd - a.costUsd;
  return entry;
}

/**
 * Entries of one hunk: same-kind steps are paired as changed by a second alignment (first on kind
 * and status, so a failed retry does not take the place of the successful call, then on kind
 * alone); what is left is one-sided.
 */
function hunkEntries(engine: Engine, a: Step[], b: Step[], o: ResolvedCompareOptions, level = 0): DiffEntry[] {
  const out: DiffEntry[] = [];
  const runs = a.length > 0 && b.length > 0 ? engine.alignKinds(a, b, o.maxEditLength, level) : undefined;
  if (!runs) {
    for (const s of a) out.push({ op: 'removed', a: s, changes: [], changesOmitted: 0, structural: true });
    for (const s of b) out.push({ op: 'added', b: s, changes: [], changesOmitted: 0, structural: true });
    return out;
  }
  for (const r of runs) {
    if (r.kind === 'equal') {
      for (let k = 0; k < r.length; k++) out.push(pairEntry(engine, a[r.aFrom + k]!, b[r.bFrom + k]!, o));
    } else if (level + 1 < KIND_LEVELS) {
      out.push(...hunkEntries(engine, a.slice(r.aFrom, r.aTo), b.slice(r.bFrom, r.bTo), o, level + 1));
    } else {
      for (let i = r.aFrom; i < r.aTo; i++) out.push({ op: 'removed', a: a[i]!, changes: [], changesOmitted: 0, structural: true });
      for (let j = r.bFrom; j < r.bTo; j++) out.push({ op: 'added', b: b[j]!, changes: [], changesOmitted: 0, structural: true });
    }
  }
  return out;
}

function compareSteps(engine: Engine, mode: Comparison['mode'], a: Step[], b: Step[], aEvents: readonly AgentEvent[] | undefined, bEvents: readonly AgentEvent[], o: ResolvedCompareOptions): Comparison {
  const { runs, method } = engine.align(a, b, o.maxEditLength);
  const entries: DiffEntry[] = [];
  for (const r of runs) {
    if (r.kind === 'equal') {
      for (let k = 0; k < r.length; k++) entries.push(pairEntry(engine, a[r.aFrom + k]!, b[r.bFrom + k]!, o));
    } else {
      entries.push(...hunkEntries(engine, a.slice(r.aFrom, r.aTo), b.slice(r.bFrom, r.bTo), o));
    }
  }
  let same = 0;
  let changed = 0;
  let dataOnly = 0;
  let onlyInA = 0;
  let onlyInB = 0;
  for (const e of entries) {
    if (e.op === 'same') same++;
    else if (e.op === 'changed') {
      changed++;
      if (e.structural !== true) dataOnly++;
    }
    else if (e.op === 'removed') onlyInA++;
    else onlyInB++;
  }
  const ta = totals(a, aEvents);
  const tb = totals(b, bEvents);
  const summary: CompareSummary = {
    same,
    changed,
    onlyInA,
    onlyInB,
    a: ta,
    b: tb,
    latencyDeltaMs: tb.latencyMs - ta.latencyMs,
    costDeltaUsd: tb.costUsd - ta.costUsd,
    errorOnlyIn: ta.errors > 0 && tb.errors === 0 ? 'a' : tb.errors > 0 && ta.errors === 0 ? 'b' : undefined,
    structural: 0,
    dataOnly,
  };
  const story = buildStory(entries, a, b, (i) => engine.facts(entries[i]!.a!, entries[i]!.b!));
  summary.structural = story.length;
  const anyDifference = entries.findIndex((e) => e.op !== 'same');
  // The first structural difference tells the story; per-run data before it is listed after it.
  const first = story.length > 0 ? story[0]!.entry : anyDifference;
  let divergence: Divergence | undefined;
  if (first >= 0) {
    const ctx: DiffEntry[] = [];
    for (let k = first - 1; k >= 0 && ctx.length < o.context && entries[k]!.structural !== true; k--) ctx.unshift(entries[k]!);
    const at = entries[first]!;
    let sa: Step | undefined;
    let sb: Step | undefined;
    for (let k = first; k < entries.length && (!sa || !sb); k++) {
      sa ??= entries[k]!.a;
      sb ??= entries[k]!.b;
    }
    const item = story.length > 0 ? story[0] : undefined;
    divergence = { entry: first, structural: item !== undefined, story: item, facts: item?.facts ?? [], context: ctx, a: sa, b: sb, changes: at.changes, changesOmitted: at.changesOmitted };
  }
  return { mode, entries, summary, divergence, story, identical: anyDifference < 0, alignment: method, options: o };
}

/** Compares two sessions' events (each in its canonical order). */
export function compareSessions(aEvents: readonly AgentEvent[], bEvents: readonly AgentEvent[], options: CompareOptions | ResolvedCompareOptions = {}): Comparison {
  const o = 'patterns' in options ? options : resolveCompareOptions(options);
  const a = stepsFromEvents(aEvents, o.patterns, o.types, o.agents);
  const b = stepsFromEvents(bEvents, o.patterns, o.types, o.agents);
  return compareSteps(exactEngine, 'sessions', a, b, aEvents, bEvents, o);
}

/**
 * Compares a session against expected steps (A = expected, B = the session). Each expected step
 * is a partial event; only the fields it gives are compared, so a file can pin what matters
 * (tool and amount) and leave out what varies (generated text, ids).
 */
export function compareExpected(expected: ReadonlyArray<Record<string, unknown>>, events: readonly AgentEvent[], options: CompareOptions | ResolvedCompareOptions = {}): Comparison {
  const o = 'patterns' in options ? options : resolveCompareOptions(options);
  const filtered = expected.filter((s) => (!o.types || o.types.includes(String(s.event_type) as never)) && (!o.agents || s.agent_id === undefined || o.agents.includes(String(s.agent_id))));
  const a = stepsFromExpected(filtered, o.patterns);
  const b = stepsFromEvents(events, o.patterns, o.types, o.agents);
  return compareSteps(expectedEngine, 'expected', a, b, undefined, events, o);
}
