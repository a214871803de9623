import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DuckDBInstance } from '@duckdb/node-api';
import type { AgentEvent } from '@agenttrace/contract';
import { findArchivePatterns } from '../src/archive-patterns.js';
import { densestErrors, type PatternOptions } from '../src/patterns.js';
import { LOOP_MAX_MEDIAN_GAP_MS, toolRuns } from '../src/summary.js';

/**
 * The SQL patterns against a brute-force reading of the same events with the functions the Redis
 * variant uses (toolRuns, densestErrors), on generated sessions written as Parquet files by DuckDB.
 */
interface Row {
  event_id: string;
  session_id: string;
  agent_id: string;
  event_type: string;
  status: string;
  tool: string | null;
  model: string | null;
  input_tokens: number | null;
  output_tokens: number | null;
  cost_usd: number | null;
  ts: number;
  kafka_partition: number;
  kafka_offset: number;
}

let dir: string;
const files: string[] = [];
const sessions = new Map<string, Row[]>();
const NOW = Date.parse('2026-06-01T12:00:00Z');

/** A small deterministic generator, so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
}

function generate(): Row[] {
  const r = rng(42);
  const out: Row[] = [];
  const offsets = [0, 0, 0, 0];
  for (let i = 0; i < 300; i++) {
    const sid = `s-${String(i).padStart(4, '0')}`;
    const partition = i % 4;
    let t = NOW - 3 * 3600_000 + Math.floor(r() * 3600_000);
    const rows: Row[] = [];
    const push = (type: string, status: string, extra: Partial<Row> = {}, agent = 'agent-a') => {
      rows.push({ event_id: `${sid}-${rows.length}`, session_id: sid, agent_id: agent, event_type: type, status, tool: null, model: null, input_tokens: null, output_tokens: null, cost_usd: null, ts: t, kafka_partition: partition, kafka_offset: offsets[partition]!++, ...extra });
    };
    push('session_start', 'ok');
    const steps = 5 + Math.floor(r() * 40);
    // Some sessions loop on one tool, fast (no backoff) or slowly; some interleave two agents.
    const loopTool = r() < 0.2 ? (r() < 0.5 ? 'lookup' : 'fetch') : undefined;
    const loopGap = r() < 0.5 ? 50 : 5000;
    for (let k = 0; k < steps; k++) {
      const x = r();
      if (loopTool && k > 2) {
        t += loopGap;
        push('tool_call', r() < 0.8 ? 'error' : 'ok', { tool: loopTool }, r() < 0.05 ? 'agent-b' : 'agent-a');
        if (r() < 0.1) push('decision', 'ok');
        continue;
      }
      t += Math.floor(r() * 20_000);
      if (x < 0.4) push('tool_call', r() < 0.1 ? 'error' : 'ok', { tool: ['lookup', 'fetch', 'pay'][Math.floor(r() * 3)]! });
      else if (x < 0.7) {
        // Priced by the caller, or by the price table (a dated model id), or unknown to it.
        const model = ['claude-sonnet-4-5-20250929', 'gpt-4o', 'mystery-model'][Math.floor(r() * 3)]!;
        const tokens = { input_tokens: Math.floor(r() * 400_000), output_tokens: Math.floor(r() * 50_000) };
        push('llm_call', 'ok', r() < 0.5 ? { model, ...tokens, cost_usd: Math.round(r() * 400) / 100 } : { model, ...tokens });
      } else if (x < 0.8) push('error', 'error');
      else push('decision', 'ok');
    }
    if (r() < 0.8) push('session_end', r() < 0.2 ? 'error' : 'ok');
    out.push(...rows);
    sessions.set(sid, rows);
  }
  return out;
}

async function writeParquet(rows: Row[], path: string): Promise<void> {
  const json = `${path}.jsonl`;
  writeFileSync(json, rows.map((x) => JSON.stringify(x)).join('\n'));
  const instance = await DuckDBInstance.create(':memory:');
  const db = await instance.connect();
  await db.run(`COPY (
    SELECT event_id, session_id, agent_id, event_type, status, tool, model,
           input_tokens::BIGINT AS input_tokens, output_tokens::BIGINT AS output_tokens, cost_usd::DOUBLE AS cost_usd,
           make_timestamp(ts::BIGINT * 1000) AS timestamp, kafka_partition::INTEGER AS kafka_partition, kafka_offset::BIGINT AS kafka_offset
    FROM read_json('${json}', format = 'newline_delimited', columns = {event_id: 'VARCHAR', session_id: 'VARCHAR', agent_id: 'VARCHAR', event_type: 'VARCHAR', status: 'VARCHAR', tool: 'VARCHAR', model: 'VARCHAR', input_tokens: 'BIGINT', output_tokens: 'BIGINT', cost_usd: 'DOUBLE', ts: 'BIGINT', kafka_partition: 'INTEGER', kafka_offset: 'BIGINT'})
  ) TO '${path}' (FORMAT parquet)`);
  db.closeSync();
  instance.closeSync();
}

const asEvent = (x: Row): AgentEvent =>
  ({ event_id: x.event_id, session_id: x.session_id, agent_id: x.agent_id, event_type: x.event_type, status: x.status, seq: x.kafka_offset, timestamp: new Date(x.ts).toISOString(), payload: { tool: x.tool ?? undefined }, context: {} }) as unknown as AgentEvent;

const options: PatternOptions = { retryCalls: 8, costUsd: 3, burstErrors: 4, burstWindowMs: 60_000, stuckMs: 3600_000, limit: 1000, now: NOW };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kshark-archive-patterns-'));
  const rows = generate();
  // Three files, the middle one overlapping the first by 50 rows: each event must count once.
  const third = Math.floor(rows.length / 3);
  const parts = [rows.slice(0, third), rows.slice(third - 50, 2 * third), rows.slice(2 * third)];
  for (const [i, part] of parts.entries()) {
    const path = join(dir, `part-${i}.parquet`);
    await writeParquet(part, path);
    files.push(path);
  }
}, 60_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('kshark patterns over archived Parquet files', () => {
  it('finds exactly the retry loops a brute-force reading finds, with the longest run, failures and backoff', async () => {
    const report = await findArchivePatterns(files, options);
    const expected = [];
    for (const [sid, rows] of sessions) {
      const perTool = new Map<string, number>();
      for (const x of rows) if (x.event_type === 'tool_call') perTool.set(x.tool!, (perTool.get(x.tool!) ?? 0) + 1);
      // Most calls first, then the first name in order.
      const [tool, calls] = [...perTool].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0] ?? ['', 0];
      if (calls <= options.retryCalls) continue;
      const runs = toolRuns(rows.map(asEvent), 2).filter((run) => run.tool === tool);
      const longest = runs.reduce<(typeof runs)[number] | undefined>((a, b) => (a === undefined || b.calls > a.calls ? b : a), undefined);
      expected.push({
        session_id: sid,
        tool,
        calls,
        longest_run: longest?.calls ?? 0,
        failed: longest?.failed ?? 0,
        median_gap_ms: longest?.median_gap_ms ?? 0,
        backoff: longest === undefined || longest.median_gap_ms > LOOP_MAX_MEDIAN_GAP_MS,
      });
    }
    expect(expected.length).toBeGreaterThan(10);
    const got = report.retry_loops.map(({ session_id, tool, calls, longest_run, failed, median_gap_ms, backoff }) => ({ session_id, tool, calls, longest_run, failed, median_gap_ms, backoff }));
    const byId = (a: { session_id: string }, b: { session_id: string }) => a.session_id.localeCompare(b.session_id);
    expect(got.sort(byId)).toEqual(expected.sort(byId));
    expect(report.retry_loops.some((l) => l.backoff) && report.retry_loops.some((l) => !l.backoff)).toBe(true);
  });

  it('prices unpriced LLM calls at the price table and lists every session above the threshold', async () => {
    const report = await findArchivePatterns(files, options);
    const price = { 'claude-sonnet-4-5-20250929': [3, 15], 'gpt-4o': [2.5, 10] } as Record<string, [number, number] | undefined>;
    const expected = new Map<string, number>();
    for (const [sid, rows] of sessions) {
      let cost = 0;
      for (const x of rows) {
        if (x.cost_usd !== null) cost += x.cost_usd;
        else if (x.model && price[x.model]) cost += (x.input_tokens! * price[x.model]![0] + x.output_tokens! * price[x.model]![1]) / 1e6;
      }
      if (cost > options.costUsd) expected.set(sid, cost);
    }
    expect(expected.size).toBeGreaterThan(10);
    expect(new Set(report.expensive.map((e) => e.session_id))).toEqual(new Set(expected.keys()));
    for (const e of report.expensive) expect(e.cost_usd).toBeCloseTo(expected.get(e.session_id)!, 6);
    expect(report.expensive.map((e) => e.cost_usd)).toEqual([...report.expensive.map((e) => e.cost_usd)].sort((a, b) => b - a));
  });

  it('finds error bursts and stuck sessions as the Redis variant defines them', async () => {
    const report = await findArchivePatterns(files, options);
    const bursts = new Map<string, number>();
    const stuck = new Set<string>();
    for (const [sid, rows] of sessions) {
      const d = densestErrors(rows.map(asEvent), options.burstWindowMs);
      if (d.count >= options.burstErrors) bursts.set(sid, d.count);
      const last = Math.max(...rows.map((x) => x.ts));
      if (!rows.some((x) => x.event_type === 'session_end') && last <= NOW - options.stuckMs) stuck.add(sid);
    }
    expect(bursts.size).toBeGreaterThan(3);
    expect(new Map(report.error_bursts.map((b) => [b.session_id, b.burst]))).toEqual(bursts);
    expect(stuck.size).toBeGreaterThan(3);
    expect(new Set(report.stuck.map((s) => s.session_id))).toEqual(stuck);
  });

  it('says when a pattern has more sessions than --limit', async () => {
    const report = await findArchivePatterns(files, { ...options, limit: 2 });
    expect(report.retry_loops).toHaveLength(2);
    expect(report.notes.some((n) => n.startsWith('retry loops: more than 2'))).toBe(true);
  });
});
