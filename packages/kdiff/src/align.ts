/**
 * Aligns two step sequences with Myers' diff (the `diff` package) so that steps inserted or
 * repeated on one side (a retry loop) do not shift everything after them. When the sessions need
 * more edits than `maxEditLength`, the exact alignment would cost O(N·D); kdiff then anchors on
 * steps that occur exactly once on each side (patience-style) and runs Myers between anchors.
 */
import { diffArrays } from 'diff';

/** A run of the alignment: equal items, or a hunk of items only in A and/or only in B. */
export type AlignRun =
  | { kind: 'equal'; aFrom: number; bFrom: number; length: number }
  | { kind: 'hunk'; aFrom: number; aTo: number; bFrom: number; bTo: number };

export interface Alignment {
  runs: AlignRun[];
  /** `myers` when the exact alignment was computed everywhere; `anchored` when the fallback was needed. */
  method: 'myers' | 'anchored';
}

type Eq<T> = (a: T, b: T) => boolean;

function pushRun(runs: AlignRun[], run: AlignRun): void {
  const last = runs[runs.length - 1];
  if (run.kind === 'equal' && run.length === 0) return;
  if (run.kind === 'hunk' && run.aFrom === run.aTo && run.bFrom === run.bTo) return;
  if (last && last.kind === 'equal' && run.kind === 'equal' && last.aFrom + last.length === run.aFrom && last.bFrom + last.length === run.bFrom) {
    last.length += run.length;
  } else if (last && last.kind === 'hunk' && run.kind === 'hunk' && last.aTo === run.aFrom && last.bTo === run.bFrom) {
    last.aTo = run.aTo;
    last.bTo = run.bTo;
  } else {
    runs.push(run);
  }
}

/** Myers over a[aFrom..aTo) and b[bFrom..bTo); undefined when more than maxEdit edits are needed. */
function myers<T>(a: readonly T[], b: readonly T[], aFrom: number, aTo: number, bFrom: number, bTo: number, maxEdit: number, eq?: Eq<T>): AlignRun[] | undefined {
  const runs: AlignRun[] = [];
  // Common prefix and suffix cost nothing to find and keep the diff's work to the changed middle.
  let i = aFrom;
  let j = bFrom;
  const same = eq ?? ((x: T, y: T) => x === y);
  while (i < aTo && j < bTo && same(a[i]!, b[j]!)) {
    i++;
    j++;
  }
  let ea = aTo;
  let eb = bTo;
  while (ea > i && eb > j && same(a[ea - 1]!, b[eb - 1]!)) {
    ea--;
    eb--;
  }
  pushRun(runs, { kind: 'equal', aFrom, bFrom, length: i - aFrom });
  if (i < ea || j < eb) {
    if (i === ea || j === eb) {
      pushRun(runs, { kind: 'hunk', aFrom: i, aTo: ea, bFrom: j, bTo: eb });
    } else {
      const options = eq ? { maxEditLength: maxEdit, comparator: eq } : { maxEditLength: maxEdit };
      const changes = diffArrays(a.slice(i, ea) as T[], b.slice(j, eb) as T[], options);
      if (!changes) return undefined;
      let ai = i;
      let bj = j;
      for (const c of changes) {
        const n = c.count ?? c.value.length;
        if (c.added) {
          pushRun(runs, { kind: 'hunk', aFrom: ai, aTo: ai, bFrom: bj, bTo: bj + n });
          bj += n;
        } else if (c.removed) {
          pushRun(runs, { kind: 'hunk', aFrom: ai, aTo: ai + n, bFrom: bj, bTo: bj });
          ai += n;
        } else {
          pushRun(runs, { kind: 'equal', aFrom: ai, bFrom: bj, length: n });
          ai += n;
          bj += n;
        }
      }
    }
  }
  pushRun(runs, { kind: 'equal', aFrom: ea, bFrom: eb, length: aTo - ea });
  return runs;
}

/** Indexes of a longest increasing subsequence of `values` (patience sorting, O(n log n)). */
function longestIncreasing(values: readonly number[]): number[] {
  const tails: number[] = [];
  const prev = new Array<number>(values.length).fill(-1);
  for (let k = 0; k < values.length; k++) {
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (values[tails[mid]!]! < values[k]!) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0) prev[k] = tails[lo - 1]!;
    tails[lo] = k;
  }
  const out: number[] = [];
  for (let k = tails.length > 0 ? tails[tails.length - 1]! : -1; k >= 0; k = prev[k]!) out.push(k);
  return out.reverse();
}

/** Anchors on items unique to both sides, then Myers (bounded) between anchors; gaps it cannot do become hunks. */
function anchored<T>(a: readonly T[], b: readonly T[], maxEdit: number): AlignRun[] {
  const count = new Map<T, { a: number; b: number; ai: number; bj: number }>();
  a.forEach((x, i) => {
    const c = count.get(x);
    if (c) c.a++;
    else count.set(x, { a: 1, b: 0, ai: i, bj: -1 });
  });
  b.forEach((x, j) => {
    const c = count.get(x);
    if (c) {
      c.b++;
      if (c.bj < 0) c.bj = j;
    }
  });
  const pairs: Array<[number, number]> = [];
  for (const c of count.values()) if (c.a === 1 && c.b === 1) pairs.push([c.ai, c.bj]);
  pairs.sort((x, y) => x[0] - y[0]);
  const keep = longestIncreasing(pairs.map((p) => p[1]));
  const runs: AlignRun[] = [];
  // Without anchors the one gap is the whole problem Myers just gave up on: do not run it twice.
  if (keep.length === 0) {
    pushRun(runs, { kind: 'hunk', aFrom: 0, aTo: a.length, bFrom: 0, bTo: b.length });
    return runs;
  }
  let ai = 0;
  let bj = 0;
  const gap = (aTo: number, bTo: number): void => {
    const inner = editLowerBound(a.slice(ai, aTo), b.slice(bj, bTo)) > maxEdit ? undefined : myers(a, b, ai, aTo, bj, bTo, maxEdit);
    if (inner) for (const r of inner) pushRun(runs, r);
    else pushRun(runs, { kind: 'hunk', aFrom: ai, aTo, bFrom: bj, bTo });
  };
  for (const k of keep) {
    const [i, j] = pairs[k]!;
    gap(i, j);
    pushRun(runs, { kind: 'equal', aFrom: i, bFrom: j, length: 1 });
    ai = i + 1;
    bj = j + 1;
  }
  gap(a.length, b.length);
  return runs;
}

/**
 * A lower bound of the edit distance: every occurrence one side has more of a key than the other
 * must be inserted or removed. Cheap (one pass), and lets kdiff skip a Myers run that is bound to
 * give up after spending its whole budget.
 */
export function editLowerBound<T>(a: readonly T[], b: readonly T[]): number {
  const count = new Map<T, number>();
  for (const x of a) count.set(x, (count.get(x) ?? 0) + 1);
  for (const x of b) count.set(x, (count.get(x) ?? 0) - 1);
  let d = 0;
  for (const c of count.values()) d += Math.abs(c);
  return d;
}

/** Aligns two sequences of comparable keys (interned signatures). */
export function alignKeys<T>(a: readonly T[], b: readonly T[], maxEdit: number): Alignment {
  if (editLowerBound(a, b) > maxEdit) return { runs: anchored(a, b, maxEdit), method: 'anchored' };
  const exact = myers(a, b, 0, a.length, 0, b.length, maxEdit);
  if (exact) return { runs: exact, method: 'myers' };
  return { runs: anchored(a, b, maxEdit), method: 'anchored' };
}

/** Aligns with a custom equality (expected-steps mode); without anchors, a too-different pair is one hunk. */
export function alignWith<T>(a: readonly T[], b: readonly T[], eq: Eq<T>, maxEdit: number): Alignment {
  const exact = myers(a, b, 0, a.length, 0, b.length, maxEdit, eq);
  if (exact) return { runs: exact, method: 'myers' };
  const runs: AlignRun[] = [];
  pushRun(runs, { kind: 'hunk', aFrom: 0, aTo: a.length, bFrom: 0, bTo: b.length });
  return { runs, method: 'anchored' };
}

/** Interns values to small integers so the diff compares numbers, not long strings. */
export function intern(values: readonly string[], table: Map<string, number>): number[] {
  return values.map((v) => {
    let id = table.get(v);
    if (id === undefined) {
      id = table.size;
      table.set(v, id);
    }
    return id;
  });
}
