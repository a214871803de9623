/**
 * Field-level differences between two pruned events, as nested paths:
 * `payload.input.amount: 4500 → 45000`. Arrays are compared item by item.
 */
import { deepEqual, formatPath, type PathSegment } from './paths.js';

export interface FieldChange {
  /** Where, as a path --ignore accepts (`payload.input.amount`, `payload.input.items[2]`). */
  path: string;
  /** `changed`: both sides have it; `removed`: only A; `added`: only B. */
  kind: 'changed' | 'added' | 'removed';
  a?: unknown;
  b?: unknown;
}

export interface FieldDiff {
  changes: FieldChange[];
  /** Changes beyond the limit, counted but not kept. */
  omitted: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

class Collector {
  readonly changes: FieldChange[] = [];
  omitted = 0;
  readonly #limit: number;

  constructor(limit: number) {
    this.#limit = limit;
  }

  add(path: readonly PathSegment[], kind: FieldChange['kind'], a: unknown, b: unknown): void {
    if (this.changes.length >= this.#limit) {
      this.omitted++;
      return;
    }
    const c: FieldChange = { path: formatPath(path), kind };
    if (kind !== 'added') c.a = a;
    if (kind !== 'removed') c.b = b;
    this.changes.push(c);
  }
}

function walk(a: unknown, b: unknown, path: PathSegment[], out: Collector): void {
  if (a === b) return;
  if (isObject(a) && isObject(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of [...keys].sort()) {
      const va = a[k];
      const vb = b[k];
      path.push(k);
      if (va === undefined && vb !== undefined) out.add(path, 'added', undefined, vb);
      else if (vb === undefined && va !== undefined) out.add(path, 'removed', va, undefined);
      else walk(va, vb, path, out);
      path.pop();
    }
    return;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    const n = Math.max(a.length, b.length);
    for (let i = 0; i < n; i++) {
      path.push(i);
      if (i >= a.length) out.add(path, 'added', undefined, b[i]);
      else if (i >= b.length) out.add(path, 'removed', a[i], undefined);
      else walk(a[i], b[i], path, out);
      path.pop();
    }
    return;
  }
  if (!deepEqual(a, b)) out.add(path, 'changed', a, b);
}

/** Every difference between two values, nested paths first-to-last in key order. */
export function diffFields(a: unknown, b: unknown, limit = 50): FieldDiff {
  const out = new Collector(limit);
  walk(a, b, [], out);
  return { changes: out.changes, omitted: out.omitted };
}

function walkSubset(expected: unknown, actual: unknown, path: PathSegment[], out: Collector): void {
  if (expected === undefined) return;
  if (isObject(expected)) {
    if (!isObject(actual)) {
      out.add(path, actual === undefined ? 'removed' : 'changed', expected, actual);
      return;
    }
    for (const k of Object.keys(expected).sort()) {
      path.push(k);
      if (actual[k] === undefined && expected[k] !== undefined) out.add(path, 'removed', expected[k], undefined);
      else walkSubset(expected[k], actual[k], path, out);
      path.pop();
    }
    return;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) {
      out.add(path, actual === undefined ? 'removed' : 'changed', expected, actual);
      return;
    }
    for (let i = 0; i < expected.length; i++) {
      path.push(i);
      walkSubset(expected[i], actual[i], path, out);
      path.pop();
    }
    return;
  }
  if (!deepEqual(expected, actual)) out.add(path, actual === undefined ? 'removed' : 'changed', expected, actual);
}

/**
 * Differences of the fields an expected step gives (A) from the actual event (B): fields the
 * expected step leaves out are not compared. A field expected but missing is `removed`.
 */
export function diffExpectedFields(expected: unknown, actual: unknown, limit = 50): FieldDiff {
  const out = new Collector(limit);
  walkSubset(expected, actual, [], out);
  return { changes: out.changes, omitted: out.omitted };
}
