// Every module a package loads is named by a string literal, so import graphs, bundlers and
// `test/packages.test.ts` (which checks dependencies against what the code loads) see it. A
// computed specifier once hid a library's dependency on a whole service (issue #15).
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * Computed loads that are justified, by file and the exact call text, with the reason. Empty: the
 * lazy loads in packages/*\/src name their module literally (common/src/kafka.ts requires the
 * native Kafka binding and common/src/s3.ts the AWS SDK through createRequire, each by a literal
 * name, to keep them off the start-up path), and literal names pass without an entry.
 */
const ALLOWED: ReadonlyArray<{ file: string; call: string; reason: string }> = [];

/**
 * Two views of a source, of the same length: `text` without comments, and `code` without comments
 * or string contents (a call is looked for in code, its argument read from text).
 */
function scrub(source: string): { text: string; code: string } {
  let text = '';
  let code = '';
  let i = 0;
  while (i < source.length) {
    const c = source[i]!;
    const next = source[i + 1];
    if (c === '/' && (next === '/' || next === '*')) {
      const end = next === '/' ? source.indexOf('\n', i) : source.indexOf('*/', i + 2) + 2;
      const stop = end <= 1 ? source.length : end;
      // Line breaks stay, so reported line numbers stay right.
      const blank = source.slice(i, stop).replace(/[^\n]/g, ' ');
      text += blank;
      code += blank;
      i = stop;
    } else if (c === "'" || c === '"' || c === '`') {
      let j = i + 1;
      while (j < source.length && source[j] !== c) j += source[j] === '\\' ? 2 : 1;
      const literal = source.slice(i, j + 1);
      text += literal;
      code += c + ' '.repeat(Math.max(0, literal.length - 2)) + (literal.length > 1 ? c : '');
      i = j + 1;
    } else {
      text += c;
      code += c;
      i++;
    }
  }
  return { text, code };
}

/** A plain string literal: quotes, or a template without substitutions. */
const LITERAL = /^\s*(?:'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|`(?:[^`\\$]|\\.|\$(?!\{))*`)\s*[,)]/;

export interface ComputedLoad {
  line: number;
  call: string;
}

/**
 * The dynamic imports and require calls of a source whose first argument is not a string literal:
 * `import(x)`, `require(x)`, a createRequire result called with a variable (`req(x)`), and
 * `createRequire(...)(x)`.
 */
export function computedLoads(source: string): ComputedLoad[] {
  const { text, code } = scrub(source);
  const requirers = new Set(['require']);
  for (const m of code.matchAll(/\b(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*(?::[^=]+)?=\s*createRequire\s*\(/g)) requirers.add(m[1]!);
  const callee = [...requirers].map((n) => n.replace(/\$/g, '\\$')).join('|');
  const calls = new RegExp(`(?<![\\w$.])(?:import|${callee})\\s*\\(|\\bcreateRequire\\s*\\([^()]*(?:\\([^()]*\\)[^()]*)*\\)\\s*\\(`, 'g');
  const out: ComputedLoad[] = [];
  for (const m of code.matchAll(calls)) {
    const at = m.index + m[0].length;
    if (LITERAL.test(text.slice(at))) continue;
    const line = text.slice(0, m.index).split('\n').length;
    const end = text.indexOf('\n', m.index);
    out.push({ line, call: text.slice(m.index, end < 0 ? undefined : end).trim() });
  }
  return out;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return /\.(ts|tsx|mts|cts|js|mjs|cjs)$/.test(name) && !name.endsWith('.d.ts') ? [p] : [];
  });
}

describe('computedLoads (the detector itself)', () => {
  it('finds a computed import, a variable require and a createRequire result called with a variable', () => {
    const source = [
      "const name = '@agenttrace/archiver';",
      'const mod = await import(name);',
      'const b = await import(`@agenttrace/${pkg}`);',
      "const requireCjs = createRequire(import.meta.url);",
      'const lib = requireCjs(moduleName);',
      'const c = createRequire(import.meta.url)(other);',
      'const d = require(spec);',
    ].join('\n');
    expect(computedLoads(source).map((c) => c.line)).toEqual([2, 3, 5, 6, 7]);
  });

  it('passes literal specifiers, type-only imports and comments', () => {
    const source = [
      "const a = await import('react');",
      'const b = await import("ink");',
      'const c = await import(`./top.js`);',
      "let client: Promise<typeof import('@platformatic/kafka')> | undefined;",
      "const requireCjs = createRequire(import.meta.url);",
      "const k = requireCjs('@confluentinc/kafka-javascript') as unknown;",
      '// await import(name) in a comment',
      '/* require(spec) */',
      "const s = 'import(name) in a string';",
      'const x = reimport(name);',
    ].join('\n');
    expect(computedLoads(source)).toEqual([]);
  });
});

describe('packages/*/src', () => {
  it('load every module by a literal name (exceptions are listed in ALLOWED with a reason)', () => {
    const found: string[] = [];
    const allowedSeen = new Set<number>();
    for (const pkg of readdirSync(join(root, 'packages'))) {
      const src = join(root, 'packages', pkg, 'src');
      try {
        if (!statSync(src).isDirectory()) continue;
      } catch {
        continue;
      }
      for (const file of sourceFiles(src)) {
        const rel = relative(root, file);
        for (const c of computedLoads(readFileSync(file, 'utf8'))) {
          const allowed = ALLOWED.findIndex((a) => a.file === rel && c.call.includes(a.call));
          if (allowed >= 0) allowedSeen.add(allowed);
          else found.push(`${rel}:${c.line}: ${c.call}`);
        }
      }
    }
    expect(found).toEqual([]);
    // An exception whose call is gone must leave the list, so the list stays the truth.
    expect(ALLOWED.filter((_, i) => !allowedSeen.has(i)).map((a) => a.file)).toEqual([]);
  });
});
