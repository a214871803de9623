/**
 * Dotted field paths (`payload.output.request_id`, `payload.input.items[2].price`) and the
 * operations on them: parsing `--ignore` patterns, pruning ignored fields out of an event before
 * it is compared, printing paths, and a key-order independent JSON text for step signatures.
 */
import { OptionsError } from '@agenttrace/common';

/** One step of a path: an object key or an array index. */
export type PathSegment = string | number;

/** A parsed ignore pattern: literal segments, `*` (any one key or index) and `**` (any depth, including none). */
export type PathPattern = readonly string[];

const SEGMENT = /^(?:\*\*|\*|[^.[\]]+)$/;

/** Parses `payload.output.request_id`, `payload.input.items[0].id`, `*.request_id`, `payload.**.trace_id`. */
export function parsePathPattern(text: string, option = '--ignore'): PathPattern {
  const trimmed = text.trim();
  if (trimmed === '') throw new OptionsError(option, 'has an empty path');
  // `[3]` and `.3` mean the same: an array index is just a segment.
  const normalized = trimmed.replace(/\[(\d+|\*)\]/g, '.$1');
  const segments = normalized.split('.');
  for (const s of segments) {
    if (!SEGMENT.test(s)) throw new OptionsError(option, `has an invalid path "${text}" (use dotted keys, [n] for array items, * and **)`);
  }
  return segments;
}

/** Prints a path as it can be given back to --ignore: `payload.input.items[2].price`. */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out === '' ? '(root)' : out;
}

/**
 * Ignore patterns compiled into one trie, walked alongside the value: a field is dropped when a
 * pattern ends at it. Events are pruned one by one for every comparison, so the walk touches only
 * the branches some pattern can still reach and shares every other subtree untouched.
 */
interface TrieNode {
  lit: Map<string, TrieNode>;
  star: TrieNode | undefined;
  /** The node after a `**`: it stays active for any number of further keys. */
  glob: TrieNode | undefined;
  isGlob: boolean;
  end: boolean;
}

const newNode = (isGlob = false): TrieNode => ({ lit: new Map(), star: undefined, glob: undefined, isGlob, end: false });

const compiled = new WeakMap<readonly PathPattern[], TrieNode>();

function compile(patterns: readonly PathPattern[]): TrieNode {
  let root = compiled.get(patterns);
  if (root) return root;
  root = newNode();
  for (const pat of patterns) {
    let n = root;
    for (const seg of pat) {
      if (seg === '**') n = n.glob ??= newNode(true);
      else if (seg === '*') n = n.star ??= newNode();
      else {
        let next = n.lit.get(seg);
        if (!next) n.lit.set(seg, (next = newNode()));
        n = next;
      }
    }
    n.end = true;
  }
  compiled.set(patterns, root);
  return root;
}

/** Adds a node and what a `**` after it matches with zero keys. */
function addClosed(out: TrieNode[], n: TrieNode): boolean {
  let matched = false;
  for (let x: TrieNode | undefined = n; x; x = x.glob) {
    if (x.end) matched = true;
    if (!out.includes(x)) out.push(x);
  }
  return matched;
}

/** Nodes active after descending into `key`; `matched` when a pattern ends there. */
function step(states: readonly TrieNode[], key: string): { next: TrieNode[]; matched: boolean } {
  const next: TrieNode[] = [];
  let matched = false;
  for (const n of states) {
    const l = n.lit.get(key);
    if (l && addClosed(next, l)) matched = true;
    if (n.star && addClosed(next, n.star)) matched = true;
    if (n.isGlob && addClosed(next, n)) matched = true;
  }
  return { next, matched };
}

function rootStates(root: TrieNode): TrieNode[] {
  const out: TrieNode[] = [];
  addClosed(out, root);
  return out;
}

function pruneNode(value: unknown, states: readonly TrieNode[]): unknown {
  // Nothing can match below here: share the subtree instead of copying it (values are never mutated).
  if (states.length === 0 || typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    const out: unknown[] = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i++) {
      const { next, matched } = step(states, String(i));
      // A removed array item becomes null so the indexes of the items after it stay put.
      out[i] = matched ? null : pruneNode(value[i], next);
    }
    return out;
  }
  const out: Record<string, unknown> = {};
  const obj = value as Record<string, unknown>;
  for (const k of Object.keys(obj)) {
    const { next, matched } = step(states, k);
    if (!matched) out[k] = pruneNode(obj[k], next);
  }
  return out;
}

/** A copy of `value` without the fields the patterns match (unmatched subtrees are shared, not copied). */
export function prune<T>(value: T, patterns: readonly PathPattern[]): T {
  if (patterns.length === 0) return value;
  return pruneNode(value, rootStates(compile(patterns))) as T;
}

/** True when `path` is matched by one of the patterns. */
export function pathMatches(path: readonly PathSegment[], patterns: readonly PathPattern[]): boolean {
  let states = rootStates(compile(patterns));
  for (const seg of path) {
    const r = step(states, String(seg));
    if (r.matched) return true;
    states = r.next;
  }
  return false;
}

/** The value at a path, or undefined. */
export function getPath(value: unknown, path: readonly PathSegment[]): unknown {
  let v = value;
  for (const seg of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string, unknown>)[seg as string];
  }
  return v;
}

const PLAIN_KEY = /^[\w$ .:/@-]*$/;

function stringifyInto(value: unknown, out: string[]): void {
  if (typeof value !== 'object' || value === null) {
    out.push(value === undefined ? 'null' : (JSON.stringify(value) ?? 'null'));
    return;
  }
  if (Array.isArray(value)) {
    out.push('[');
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out.push(',');
      stringifyInto(value[i], out);
    }
    out.push(']');
    return;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  if (keys.length > 1) keys.sort();
  out.push('{');
  let first = true;
  for (const k of keys) {
    const v = obj[k];
    if (v === undefined) continue;
    // Most keys need no escaping; JSON.stringify per key is the costly part of signatures.
    out.push(first ? '' : ',', PLAIN_KEY.test(k) ? `"${k}":` : `${JSON.stringify(k)}:`);
    first = false;
    stringifyInto(v, out);
  }
  out.push('}');
}

/** JSON text with object keys sorted, so `{a,b}` and `{b,a}` give the same signature. */
export function stableStringify(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (typeof value !== 'object' || value === null) return JSON.stringify(value) ?? 'null';
  const out: string[] = [];
  stringifyInto(value, out);
  return out.join('');
}

/** Structural equality of JSON values (key order does not matter; undefined fields count as absent). */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return Number.isNaN(a) && Number.isNaN(b);
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    if (a.length !== bb.length) return false;
    for (let i = 0; i < a.length; i++) if (!deepEqual(a[i], bb[i])) return false;
    return true;
  }
  const oa = a as Record<string, unknown>;
  const ob = b as Record<string, unknown>;
  let na = 0;
  for (const k in oa) {
    if (!Object.prototype.hasOwnProperty.call(oa, k) || oa[k] === undefined) continue;
    na++;
    if (!deepEqual(oa[k], ob[k])) return false;
  }
  let nb = 0;
  for (const k in ob) if (Object.prototype.hasOwnProperty.call(ob, k) && ob[k] !== undefined) nb++;
  return na === nb;
}

/** True when every field `expected` gives is present and equal in `actual` (arrays: same length, item by item). */
export function subsetMatches(expected: unknown, actual: unknown): boolean {
  if (expected === undefined) return true;
  if (typeof expected !== 'object' || expected === null) return deepEqual(expected, actual);
  if (typeof actual !== 'object' || actual === null || Array.isArray(expected) !== Array.isArray(actual)) return false;
  if (Array.isArray(expected)) {
    const act = actual as unknown[];
    if (expected.length !== act.length) return false;
    for (let i = 0; i < expected.length; i++) if (!subsetMatches(expected[i], act[i])) return false;
    return true;
  }
  for (const [k, v] of Object.entries(expected)) {
    if (!subsetMatches(v, (actual as Record<string, unknown>)[k])) return false;
  }
  return true;
}
