// Every workspace package is publishable as it stands: `npm pack` ships exactly what a user needs
// (README, LICENSE, the build, bins, the schema) and nothing of the repository's own (tests,
// benchmarks, sources, compiler caches), and package.json says where it comes from, which Node it
// needs, that it is public, and depends on exactly the packages its code loads.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const rootPkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { engines: { node: string }; workspaces: string[] };

interface PackageJson {
  name: string;
  license?: string;
  repository?: { type?: string; url?: string; directory?: string };
  engines?: { node?: string };
  publishConfig?: { access?: string };
  main?: string;
  types?: string;
  exports?: Record<string, { types?: string; default?: string }>;
  bin?: Record<string, string>;
  dependencies?: Record<string, string>;
}
interface PackResult {
  name: string;
  files: Array<{ path: string }>;
}

const workspaces = rootPkg.workspaces.map((dir) => ({ dir, pkg: JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8')) as PackageJson }));
const packs = new Map<string, string[]>();

beforeAll(async () => {
  const { stdout } = await promisify(execFile)('npm', ['pack', '--dry-run', '--json', '--workspaces', '--ignore-scripts'], {
    cwd: root,
    maxBuffer: 64 * 1024 * 1024,
  });
  for (const r of JSON.parse(stdout) as PackResult[]) packs.set(r.name, r.files.map((f) => f.path).sort());
}, 120_000);

/** Every file under dir, relative to it. */
function walk(dir: string, base = ''): string[] {
  return readdirSync(join(dir, base)).flatMap((name) => {
    const rel = base ? `${base}/${name}` : name;
    return statSync(join(dir, rel)).isDirectory() ? walk(dir, rel) : [rel];
  });
}

/** Package names a source file loads: static and dynamic imports, re-exports, require. */
function loadedPackages(source: string): string[] {
  const out: string[] = [];
  for (const m of source.matchAll(/(?<![\w.$-])(?:from\s*|import\s*\(?\s*|require\w*\(\s*)'((?:@[\w.-]+\/)?[\w][\w.-]*(?:\/[\w./-]*)?|node:[\w/]+)'/g)) {
    const spec = m[1]!;
    if (spec.startsWith('node:')) continue;
    out.push(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
  }
  return out;
}

describe.each(workspaces)('$dir', ({ dir, pkg }) => {
  const files = () => {
    const f = packs.get(pkg.name);
    if (!f) throw new Error(`npm pack did not list ${pkg.name}`);
    return f;
  };

  it('package.json says where it comes from, which Node it needs, and that it is public', () => {
    expect(pkg.license).toBe('Apache-2.0');
    expect(pkg.repository).toEqual({ type: 'git', url: 'https://github.com/agenttrace/agenttrace.git', directory: dir });
    expect(pkg.engines?.node).toBe(rootPkg.engines.node);
    expect(pkg.publishConfig?.access).toBe('public');
  });

  it('the tarball has README, LICENSE, package.json, the entry points and every bin', () => {
    const f = files();
    for (const need of ['README.md', 'LICENSE', 'package.json', 'dist/index.js', 'dist/index.d.ts']) expect(f).toContain(need);
    for (const target of [pkg.main, pkg.types, ...Object.values(pkg.exports ?? {}).flatMap((e) => [e.types, e.default])]) {
      if (target) expect(f).toContain(target.replace(/^\.\//, ''));
    }
    for (const [name, target] of Object.entries(pkg.bin ?? {})) {
      expect(target, name).toMatch(/^\.\/bin\//);
      expect(f).toContain(target.replace(/^\.\//, ''));
    }
    // The README's install line names this package.
    expect(readFileSync(join(root, dir, 'README.md'), 'utf8')).toMatch(new RegExp(`npm install (-g )?${pkg.name}\\b`));
  });

  it('the tarball has nothing else: no tests, benchmarks, sources, compiler caches or dangling maps', () => {
    const f = files();
    const allowed = /^(README\.md|LICENSE|package\.json|dist\/.+\.(js|d\.ts|js\.map)|bin\/[^/]+\.js|schema\/[^/]+\.json|data\/[^/]+\.json|dist\/public\/[^/]+\.(html|css|js|svg))$/;
    expect(f.filter((p) => !allowed.test(p))).toEqual([]);
    expect(f.filter((p) => /(^|\/)(test|tests|bench|src|__tests__)\/|\.(test|spec|bench)\.|tsbuildinfo|\.d\.ts\.map$/.test(p))).toEqual([]);
    // Every shipped bin is one of the package's bins (no stray scripts).
    const bins = new Set(Object.values(pkg.bin ?? {}).map((t) => t.replace(/^\.\//, '')));
    expect(f.filter((p) => p.startsWith('bin/') && !bins.has(p))).toEqual([]);
    // Maps are shipped without src/, so each must carry its sources inline.
    for (const map of f.filter((p) => p.endsWith('.js.map'))) {
      const m = JSON.parse(readFileSync(join(root, dir, map), 'utf8')) as { sources: string[]; sourcesContent?: Array<string | null> };
      expect(m.sourcesContent?.length, map).toBe(m.sources.length);
      expect(m.sourcesContent?.every((s) => typeof s === 'string' && s.length > 0), map).toBe(true);
    }
    // Everything the build put in dist/ is either shipped or deliberately left out.
    const built = walk(join(root, dir, 'dist')).map((p) => `dist/${p}`);
    expect(built.filter((p) => !f.includes(p) && !/\.d\.ts\.map$|\.tsbuildinfo$/.test(p))).toEqual([]);
  });

  it('depends on exactly the packages its code loads', () => {
    const sources = walk(join(root, dir, 'src')).filter((p) => /\.tsx?$/.test(p));
    const loaded = new Set(sources.flatMap((p) => loadedPackages(readFileSync(join(root, dir, 'src', p), 'utf8'))));
    // A name held in a constant for a lazy import still counts as loaded.
    const text = sources.map((p) => readFileSync(join(root, dir, 'src', p), 'utf8')).join('\n');
    const declared = Object.keys(pkg.dependencies ?? {});
    expect([...loaded].filter((d) => !declared.includes(d)).sort(), 'loaded but not declared').toEqual([]);
    expect(declared.filter((d) => !loaded.has(d) && !text.includes(`'${d}'`)).sort(), 'declared but never loaded').toEqual([]);
  });
});

describe('command-line entry points', () => {
  it('end through exitWhenDrained (or runCli), never a bare process.exit() that would cut piped output', () => {
    const offenders: string[] = [];
    for (const dir of readdirSync(join(root, 'packages'))) {
      const cli = join(root, 'packages', dir, 'src', 'cli.ts');
      if (!existsSync(cli)) continue;
      const text = readFileSync(cli, 'utf8');
      if (/\bprocess\.exit\(/.test(text.replace(/\/\/.*$/gm, ''))) offenders.push(`packages/${dir}/src/cli.ts`);
      // runCli (common) ends through exitWhenDrained too.
      if (!text.includes('exitWhenDrained(') && !text.includes('runCli(')) offenders.push(`packages/${dir}/src/cli.ts (no exitWhenDrained or runCli)`);
    }
    expect(offenders).toEqual([]);
  });
});
