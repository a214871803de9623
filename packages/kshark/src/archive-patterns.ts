import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { DEFAULT_PRICES, priceOf, type PriceTable } from '@agenttrace/contract';
import { LOOP_MAX_MEDIAN_GAP_MS } from './summary.js';
import { PATTERNS_JSON_FORMAT, type PatternOptions, type PatternReport } from './patterns.js';

/**
 * The batch patterns over archived Parquet files, in SQL (DuckDB), with the same definitions as
 * the Redis variant in patterns.ts:
 * - a retry loop is one tool called more than `retryCalls` times in a session; its longest
 *   back-to-back run (tool calls of one agent, other event types in between do not break it) gives
 *   the failures and the median gap (the upper middle value, as summary.ts computes it);
 * - an expensive session costs more than `costUsd` (an LLM call without a cost is priced at the
 *   price table, as the dashboard consumer does);
 * - an error burst is `burstErrors` errors within `burstWindowMs`;
 * - a stuck session has no session_end and no event for `stuckMs` before `now`.
 * Each event counts once even if two stored files held it (event_id).
 */
export async function findArchivePatterns(files: string[], o: PatternOptions, prices: PriceTable = DEFAULT_PRICES): Promise<PatternReport> {
  const report: PatternReport = {
    format: PATTERNS_JSON_FORMAT,
    source: 'archive',
    thresholds: { retry_calls: o.retryCalls, cost_usd: o.costUsd, burst_errors: o.burstErrors, burst_window_ms: o.burstWindowMs, stuck_ms: o.stuckMs },
    retry_loops: [],
    expensive: [],
    error_bursts: [],
    stuck: [],
    notes: [],
  };
  if (files.length === 0) {
    report.notes.push('the archive holds no files in the range');
    return report;
  }
  const instance = await DuckDBInstance.create(':memory:');
  const db = await instance.connect();
  try {
    await loadEvents(db, files);
    await loadPrices(db, prices);
    await loadSessions(db);
    const cut = <T>(rows: T[], what: string): T[] => {
      if (rows.length > o.limit) report.notes.push(`${what}: more than ${o.limit} sessions; the top ${o.limit} are shown (--limit)`);
      return rows.slice(0, o.limit);
    };
    report.retry_loops = cut(await retryLoops(db, o), 'retry loops');
    report.expensive = cut(await expensive(db, o), 'expensive sessions');
    report.error_bursts = cut(await errorBursts(db, o), 'error bursts');
    report.stuck = cut(await stuck(db, o), 'stuck sessions');
    return report;
  } finally {
    db.closeSync();
    instance.closeSync();
  }
}

/** SQL string literal. File paths come from the local cache, but quote them all the same. */
const lit = (s: string): string => `'${s.replaceAll("'", "''")}'`;

async function loadEvents(db: DuckDBConnection, files: string[]): Promise<void> {
  // Only the columns the patterns need: payload and context are most of each file's bytes.
  await db.run(`
    CREATE TEMP TABLE ev AS
    SELECT session_id, agent_id, event_type, status, tool, model, input_tokens, output_tokens, cost_usd,
           epoch_ms(timestamp) AS ts, kafka_partition, kafka_offset
    FROM read_parquet([${files.map(lit).join(', ')}], union_by_name = true)
    QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY kafka_partition, kafka_offset) = 1`);
}

async function loadPrices(db: DuckDBConnection, prices: PriceTable): Promise<void> {
  await db.run('CREATE TEMP TABLE price (model VARCHAR, input DOUBLE, output DOUBLE)');
  // The table's lookup rules (prefixes, provider names) live in priceOf: apply them per distinct model.
  const models = await db.runAndReadAll(`SELECT DISTINCT model FROM ev WHERE event_type = 'llm_call' AND cost_usd IS NULL AND model IS NOT NULL`);
  const rows: string[] = [];
  for (const [model] of models.getRows()) {
    const p = priceOf(String(model), prices);
    if (p) rows.push(`(${lit(String(model))}, ${p.input}, ${p.output})`);
  }
  if (rows.length > 0) await db.run(`INSERT INTO price VALUES ${rows.join(', ')}`);
}

/** The agent that opened the session (its first event) and its status as the dashboard names it; one table for every pattern. */
async function loadSessions(db: DuckDBConnection): Promise<void> {
  await db.run(`
    CREATE TEMP TABLE sess AS
    SELECT session_id,
           arg_min(agent_id, kafka_offset) AS agent_id,
           CASE WHEN bool_or(event_type = 'session_end' AND status = 'error') THEN 'error'
                WHEN bool_or(event_type = 'session_end') THEN 'completed' ELSE 'active' END AS status,
           count(*) AS event_count, max(ts) AS last_ts,
           arg_max(event_type || coalesce(' ' || CASE event_type WHEN 'tool_call' THEN tool WHEN 'llm_call' THEN model END, ''), kafka_offset) AS last_step
    FROM ev GROUP BY session_id`);
}

async function rows(db: DuckDBConnection, sql: string): Promise<Array<Record<string, unknown>>> {
  const r = await db.runAndReadAll(sql);
  return r.getRowObjectsJS() as Array<Record<string, unknown>>;
}

async function retryLoops(db: DuckDBConnection, o: PatternOptions): Promise<PatternReport['retry_loops']> {
  const found = await rows(
    db,
    `WITH
    per_tool AS (
      SELECT session_id, tool, count(*) AS calls FROM ev WHERE event_type = 'tool_call' GROUP BY ALL),
    top_tool AS (
      -- The most called tool; a tie goes to the first name in order, so answers are stable.
      SELECT session_id, tool, calls FROM per_tool
      QUALIFY row_number() OVER (PARTITION BY session_id ORDER BY calls DESC, tool) = 1 AND calls > ${o.retryCalls}),
    calls AS (
      SELECT session_id, agent_id, tool, status, ts, kafka_offset,
             row_number() OVER (PARTITION BY session_id ORDER BY kafka_offset)
               - row_number() OVER (PARTITION BY session_id, agent_id, tool ORDER BY kafka_offset) AS island
      -- Runs are found only in the sessions that qualify: the rest never need them.
      FROM ev WHERE event_type = 'tool_call' AND session_id IN (SELECT session_id FROM top_tool)),
    gaps AS (
      SELECT c.session_id, c.tool, c.agent_id, c.island, c.status, c.kafka_offset,
             c.ts - lag(c.ts) OVER (PARTITION BY c.session_id, c.agent_id, c.tool, c.island ORDER BY c.kafka_offset) AS gap
      FROM calls c JOIN top_tool t ON t.session_id = c.session_id AND t.tool IS NOT DISTINCT FROM c.tool),
    runs AS (
      -- Runs of two calls or more, as summary.ts's toolRuns counts them.
      SELECT session_id, agent_id, island, min(kafka_offset) AS first_offset, count(*) AS run_calls,
             count(*) FILTER (WHERE status = 'error') AS failed,
             coalesce(list_sort(list(gap) FILTER (WHERE gap IS NOT NULL))[floor(count(gap) / 2)::BIGINT + 1], 0) AS median_gap
      FROM gaps GROUP BY ALL HAVING count(*) >= 2),
    longest AS (
      SELECT session_id, run_calls AS longest_run, failed, median_gap FROM runs
      QUALIFY row_number() OVER (PARTITION BY session_id ORDER BY run_calls DESC, first_offset) = 1)
    SELECT t.session_id, s.agent_id, s.status, t.tool, t.calls, l.longest_run, l.failed, l.median_gap
    FROM top_tool t JOIN sess s USING (session_id) LEFT JOIN longest l USING (session_id)
    ORDER BY t.calls DESC, t.session_id
    LIMIT ${o.limit + 1}`,
  );
  return found.map((r) => {
    // No run of two calls back to back: the calls are spread out, which is not a tight loop.
    const gap = r.longest_run === null ? undefined : Number(r.median_gap);
    return {
      session_id: String(r.session_id),
      agent_id: String(r.agent_id),
      status: String(r.status),
      tool: r.tool === null ? '' : String(r.tool),
      calls: Number(r.calls),
      longest_run: Number(r.longest_run ?? 0),
      failed: Number(r.failed ?? 0),
      median_gap_ms: gap ?? 0,
      backoff: gap === undefined || gap > LOOP_MAX_MEDIAN_GAP_MS,
    };
  });
}

async function expensive(db: DuckDBConnection, o: PatternOptions): Promise<PatternReport['expensive']> {
  const found = await rows(
    db,
    `WITH
    cost AS (
      SELECT e.session_id,
             sum(coalesce(e.cost_usd, (coalesce(e.input_tokens, 0) * p.input + coalesce(e.output_tokens, 0) * p.output) / 1e6, 0)) AS cost_usd
      FROM ev e LEFT JOIN price p ON e.cost_usd IS NULL AND p.model = e.model
      GROUP BY e.session_id)
    SELECT c.session_id, s.agent_id, s.status, c.cost_usd, s.event_count
    FROM cost c JOIN sess s USING (session_id)
    WHERE c.cost_usd > ${o.costUsd}
    ORDER BY c.cost_usd DESC, c.session_id
    LIMIT ${o.limit + 1}`,
  );
  return found.map((r) => ({
    session_id: String(r.session_id),
    agent_id: String(r.agent_id),
    status: String(r.status),
    cost_usd: Number(r.cost_usd),
    event_count: Number(r.event_count),
  }));
}

async function errorBursts(db: DuckDBConnection, o: PatternOptions): Promise<PatternReport['error_bursts']> {
  // For each error, the errors in the window that starts at it; a session's burst is the largest.
  const found = await rows(
    db,
    `WITH
    errs AS (
      SELECT session_id, ts FROM ev
      WHERE event_type = 'error' OR (status = 'error' AND event_type <> 'session_end')),
    windows AS (
      SELECT session_id, ts,
             count(*) OVER (PARTITION BY session_id ORDER BY ts RANGE BETWEEN CURRENT ROW AND ${o.burstWindowMs} FOLLOWING) AS n,
             count(*) OVER (PARTITION BY session_id) AS total
      FROM errs),
    best AS (
      SELECT session_id, max(n) AS burst, arg_max(ts, n) AS burst_start, any_value(total) AS error_count
      FROM windows GROUP BY session_id HAVING max(n) >= ${o.burstErrors})
    SELECT b.session_id, s.agent_id, b.error_count, b.burst, b.burst_start
    FROM best b JOIN sess s USING (session_id)
    ORDER BY b.burst DESC, b.error_count DESC, b.session_id
    LIMIT ${o.limit + 1}`,
  );
  return found.map((r) => ({
    session_id: String(r.session_id),
    agent_id: String(r.agent_id),
    error_count: Number(r.error_count),
    burst: Number(r.burst),
    burst_start: new Date(Number(r.burst_start)).toISOString(),
  }));
}

async function stuck(db: DuckDBConnection, o: PatternOptions): Promise<PatternReport['stuck']> {
  const found = await rows(
    db,
    `SELECT session_id, agent_id, last_ts, last_step FROM sess
    WHERE status = 'active' AND last_ts <= ${o.now - o.stuckMs}
    ORDER BY last_ts DESC, session_id
    LIMIT ${o.limit + 1}`,
  );
  return found.map((r) => ({
    session_id: String(r.session_id),
    agent_id: String(r.agent_id),
    last_ts: new Date(Number(r.last_ts)).toISOString(),
    idle_ms: Math.max(0, o.now - Number(r.last_ts)),
    current_step: String(r.last_step),
  }));
}
