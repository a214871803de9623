/**
 * A new user's first minutes, on a clean clone rather than this checkout's warm node_modules:
 * npm's install links every documented bin (so `npx --no-install kshark` never asks the public
 * registry for a package of that name) and leaves the committed lock file as it was.
 *
 * The clone is of HEAD: uncommitted changes are not part of it. The install runs offline from
 * npm's cache (filled by `scripts/setup`); npx runs with the registry pointed at a closed port,
 * so any attempt to reach it fails the test. Native
 * builds are skipped (--ignore-scripts) and the built output is copied from this checkout: what
 * is under test is npm's linking and the lock file, not the compiler.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessSync, constants, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot, runProcess } from '../test-support/stack.js';

const dir = mkdtempSync(join(tmpdir(), 'agenttrace-clone-'));
const clone = join(dir, 'agenttrace');
/** An address where nothing listens: a registry request fails at once instead of going out. */
const offlineEnv = { ...process.env, npm_config_registry: 'http://127.0.0.1:9/', npm_config_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false', NO_COLOR: '1' };

/** Every bin the workspace packages declare, with the package that declares it. */
function declaredBins(root: string): { bin: string; pkg: string; file: string }[] {
  const out: { bin: string; pkg: string; file: string }[] = [];
  for (const pkg of readdirSync(join(root, 'packages'))) {
    const manifest = join(root, 'packages', pkg, 'package.json');
    if (!existsSync(manifest)) continue;
    const bin = (JSON.parse(readFileSync(manifest, 'utf8')) as { bin?: Record<string, string> }).bin ?? {};
    for (const [name, file] of Object.entries(bin)) out.push({ bin: name, pkg, file });
  }
  return out;
}

beforeAll(async () => {
  const cloned = await runProcess('git', ['clone', '--quiet', '--no-hardlinks', repoRoot, clone], { timeoutMs: 120_000 });
  expect(cloned.code, cloned.stderr).toBe(0);
  const installed = await runProcess('npm', ['install', '--offline', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error', '--prefix', clone], {
    // npm's cache is keyed by registry address: the install keeps the default one, offline.
    env: { ...process.env, npm_config_offline: 'true' },
    timeoutMs: 300_000,
  });
  expect(installed.code, `npm install in a clean clone failed:\n${installed.stderr}`).toBe(0);
}, 420_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a clean clone after npm install', () => {
  it('keeps the committed lock file unchanged', async () => {
    const status = await runProcess('git', ['-C', clone, 'status', '--porcelain']);
    expect(status.stdout).toBe('');
  });

  it('links every declared bin to a committed file of the clone', () => {
    const bins = declaredBins(clone);
    expect(bins.map((b) => b.bin)).toEqual(expect.arrayContaining(['kshark', 'kdiff', 'kafmirror', 'agenttrace-dashboard', 'agenttrace-archiver']));
    for (const { bin, pkg, file } of bins) {
      const link = join(clone, 'node_modules', '.bin', bin);
      expect(existsSync(link), `node_modules/.bin/${bin} is missing: npx ${bin} would ask the npm registry`).toBe(true);
      expect(realpathSync(link)).toBe(realpathSync(join(clone, 'packages', pkg, file)));
      accessSync(link, constants.X_OK);
    }
  });

  it('runs each bin with npx --no-install, without the registry', async () => {
    // The build output and the native Kafka client, as `scripts/setup` would have made them.
    for (const pkg of readdirSync(join(repoRoot, 'packages'))) {
      const dist = join(repoRoot, 'packages', pkg, 'dist');
      if (existsSync(dist)) cpSync(dist, join(clone, 'packages', pkg, 'dist'), { recursive: true });
    }
    const native = 'node_modules/@confluentinc/kafka-javascript/build';
    cpSync(join(repoRoot, native), join(clone, native), { recursive: true });

    for (const { bin, pkg } of declaredBins(clone)) {
      const r = await runProcess('npx', ['--no-install', bin, '--help'], { env: offlineEnv, timeoutMs: 60_000, cwd: clone });
      expect(r.stderr, `npx --no-install ${bin} --help (packages/${pkg})`).not.toMatch(/npm error|ENOTFOUND|ECONNREFUSED|404/);
      expect(r.code, `npx --no-install ${bin} --help exited ${r.code}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toMatch(/usage/i);
    }
  }, 300_000);
});
