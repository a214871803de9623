import type { StringRedactor } from './redact.js';

/**
 * Makes a JSON-safe, redacted copy of a value the agent handed us. Values JSON cannot carry are
 * represented instead of crashing the agent: cycles, BigInt, functions, symbols, Errors, Maps,
 * Sets, typed arrays and over-deep nesting each get a readable stand-in.
 */
export interface SnapshotOptions {
  redactString: StringRedactor | undefined;
  redactKeys: Set<string>;
  maxDepth: number;
}

export function snapshot(value: unknown, opts: SnapshotOptions, path: string): unknown {
  const seen = new Set<object>();
  const walk = (v: unknown, p: string, depth: number): unknown => {
    switch (typeof v) {
      case 'string':
        return opts.redactString ? opts.redactString(v, p) : v;
      case 'number':
        return Number.isFinite(v) ? v : String(v);
      case 'boolean':
        return v;
      case 'bigint':
        return `${v.toString()}n`;
      case 'undefined':
        return undefined;
      case 'function':
        return `[Function ${(v as { name?: string }).name || 'anonymous'}]`;
      case 'symbol':
        return v.toString();
      default:
        break;
    }
    if (v === null) return null;
    const obj = v as object;
    if (seen.has(obj)) return '[Circular]';
    if (depth >= opts.maxDepth) return '[MaxDepth]';
    // Boxed primitives: JSON writes them as the primitive, so they are redacted as one.
    if (obj instanceof String || obj instanceof Number || obj instanceof Boolean) return walk(obj.valueOf(), p, depth);
    if (obj instanceof Date) return Number.isNaN(obj.getTime()) ? 'Invalid Date' : obj.toISOString();
    if (obj instanceof Error) {
      const e: Record<string, unknown> = { name: obj.name, message: walk(obj.message, `${p}.message`, depth + 1) };
      if (obj.stack) e.stack = walk(obj.stack, `${p}.stack`, depth + 1);
      return e;
    }
    if (ArrayBuffer.isView(obj)) return { type: obj.constructor.name, bytes: obj.byteLength };
    seen.add(obj);
    try {
      if (Array.isArray(obj)) return obj.map((item, i) => walk(item, `${p}.${i}`, depth + 1) ?? null);
      if (obj instanceof Map) {
        const out: Record<string, unknown> = {};
        for (const [k, item] of obj) out[String(k)] = walk(item, `${p}.${String(k)}`, depth + 1);
        return out;
      }
      if (obj instanceof Set) return [...obj].map((item, i) => walk(item, `${p}.${i}`, depth + 1) ?? null);
      const toJSON = (obj as { toJSON?: unknown }).toJSON;
      if (typeof toJSON === 'function') {
        try {
          return walk((toJSON as () => unknown).call(obj), p, depth + 1);
        } catch {
          return '[Unserializable]';
        }
      }
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(obj)) {
        const child = `${p}.${key}`;
        if (opts.redactKeys.has(key.toLowerCase())) {
          out[key] = '[REDACTED:key]';
          continue;
        }
        let item: unknown;
        try {
          item = (obj as Record<string, unknown>)[key];
        } catch {
          item = '[Unreadable]';
        }
        const w = walk(item, child, depth + 1);
        if (w !== undefined) out[key] = w;
      }
      return out;
    } finally {
      seen.delete(obj);
    }
  };
  return walk(value, path, 0);
}
