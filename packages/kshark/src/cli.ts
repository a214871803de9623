#!/usr/bin/env node
import { Command, CommanderError, Option } from 'commander';
import { addSettingsOptions, createS3Client, errorMessage, exitWhenDrained, guardCliOutput, parseTimeExpression, SETTINGS_HELP, settingsFromFlags, sanitizeForTerminal, type AgentTraceSettings, type SettingsFlags } from '@agenttrace/common';
import type { EventType } from '@agenttrace/contract';
import { SESSION_SORTS, SessionReader, type ListSessionsOptions, type SessionSort, type SessionStatus } from '@agenttrace/sessions';
import { EXIT, EXIT_CODES_HELP, UsageError, exitCodeFor } from './errors.js';
import { grepFlag, listFlag } from './options.js';
import { makeChalk } from './render.js';
import { readReplayView, runReplay, type ReplayOutput } from './replay.js';
import { sessionsJson, sessionsTable } from './sessions-list.js';
import { findPatterns, patternsJson, patternsText } from './patterns.js';


interface SharedFlags extends SettingsFlags {
  color?: boolean;
}

function shared(cmd: Command): Command {
  return addSettingsOptions(cmd)
    .option('--color', 'force colors')
    .option('--no-color', 'no colors (also when NO_COLOR is set)');
}

function settingsFrom(flags: SharedFlags): AgentTraceSettings {
  return settingsFromFlags(flags);
}

/** Colors only on a terminal and without NO_COLOR, unless --color/--no-color says otherwise. */
function useColor(flags: SharedFlags, stream: NodeJS.WriteStream): boolean {
  // commander folds --color/--no-color into one boolean that defaults to true; only an explicit flag forces.
  const explicit = process.argv.some((a) => a === '--color' || a === '--no-color');
  if (explicit) return flags.color === true;
  if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== '') return false;
  return stream.isTTY === true;
}

/**
 * Progress of a long archive fetch on stderr, at most once a second (stdout stays the answer
 * alone, so --json pipes whole).
 */
function makeProgress(): { update: (done: number, total: number, bytes: number) => void; done: (r: { fetched: number; cached: number; bytes: number }) => void } {
  let last = 0;
  return {
    update: (done, total, bytes) => {
      const now = Date.now();
      if (now - last < 1000 || done === total) return;
      last = now;
      process.stderr.write(`kshark: fetching the archive: ${done}/${total} files, ${(bytes / 1e6).toFixed(1)} MB\n`);
    },
    done: (r) => process.stderr.write(`kshark: archive: ${r.fetched + r.cached} files (${r.fetched} fetched, ${(r.bytes / 1e6).toFixed(1)} MB; ${r.cached} from the cache)\n`),
  };
}

function time(value: string | undefined, flag: string): number | undefined {
  return value === undefined ? undefined : parseTimeExpression(value, Date.now(), flag);
}

const SOURCES = ['auto', 'redis', 'kafka', 'archive'] as const;

interface ReplayFlags extends SharedFlags {
  from?: string;
  to?: string;
  type?: string;
  agent?: string;
  grep?: string;
  follow?: boolean;
  json?: boolean;
  jsonl?: boolean;
  full?: boolean;
  source: (typeof SOURCES)[number];
  interactive?: boolean;
}

function program(): Command {
  const p = new Command('kshark')
    .description('Replay AI-agent sessions from Kafka, Redis or the S3 archive in the terminal.')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', `\nExamples:\n  kshark replay sess_a1b2c3\n  kshark sessions --status error --since -1h\n  kshark top\n\n${EXIT_CODES_HELP}\n\n${SETTINGS_HELP}`);

  shared(
    p
      .command('replay')
      .description('Replay one session step by step: what it did, why, what it cost.')
      .argument('<session-id>', 'the session to replay')
      .option('--from <time>', 'only events at or after this time (ISO-8601, epoch ms, or relative: -2h, 30m)')
      .option('--to <time>', 'only events at or before this time')
      .option('--type <types>', 'only these event types, comma-separated (tool_call,llm_call,decision,delegation,error,custom,session_start,session_end)')
      .option('--agent <ids>', 'only events of these agents, comma-separated')
      .option('--grep <pattern>', 'only events whose JSON matches this regular expression (case-insensitive)')
      .option('-f, --follow', 'keep streaming new events of the session as they arrive (Ctrl-C stops)')
      .option('--json', 'one JSON document (format kshark.replay.v1, see docs/kshark.md)')
      .option('--jsonl', 'one contract-v1 event per line; warnings go to stderr')
      .option('--full', 'show inputs, outputs and stacks in full instead of one truncated line')
      .addOption(new Option('--source <source>', 'where to read from').choices([...SOURCES]).default('auto'))
      .option('-i, --interactive', 'interactive view (default when stdin and stdout are terminals)')
      .option('--no-interactive', 'print the timeline even on a terminal'),
  )
    .addHelpText(
      'after',
      `
Sources (--source auto tries them in this order): redis (the dashboard consumer's live timeline),
kafka (scans only the session's partition, from --from), archive (Parquet on S3, for sessions past
Kafka retention). The summary names the source and warns about gaps or duplicates in seq.

Interactive keys: ↑/↓ j/k move, PgUp/PgDn, g/G, enter expand a step, e/E next/previous error, s summary, q quit.

Examples:
  kshark replay sess_a1b2c3
  kshark replay sess_a1b2c3 --from 2026-01-15T14:00:00Z --to 2026-01-15T15:00:00Z
  kshark replay sess_a1b2c3 --from -2h --type tool_call,error --grep stripe
  kshark replay sess_a1b2c3 --follow
  kshark replay sess_a1b2c3 --jsonl | jq -r .event_type | sort | uniq -c
  kshark replay sess_a1b2c3 --source archive --json > session.json

${EXIT_CODES_HELP}

${SETTINGS_HELP}`,
    )
    .action(async (sessionId: string, flags: ReplayFlags) => {
      if (flags.json && flags.jsonl) throw new UsageError('--json and --jsonl cannot be used together');
      if (flags.json && flags.follow) throw new UsageError('--json prints one document and cannot --follow; use --jsonl --follow');
      if (flags.interactive && (flags.json || flags.jsonl)) throw new UsageError('--interactive cannot be combined with --json or --jsonl');
      const from = time(flags.from, '--from');
      const to = time(flags.to, '--to');
      if (from !== undefined && to !== undefined && from > to) throw new UsageError('--from is after --to');
      const grep = grepFlag(flags.grep);
      const types = listFlag(flags.type) as EventType[] | undefined;
      const agents = listFlag(flags.agent);
      const settings = settingsFrom(flags);
      const tty = process.stdout.isTTY === true && process.stdin.isTTY === true;
      let output: ReplayOutput = flags.json ? 'json' : flags.jsonl ? 'jsonl' : 'pretty';
      if (output === 'pretty' && (flags.interactive === true || (flags.interactive === undefined && tty))) {
        if (!tty) throw new UsageError('--interactive needs a terminal on stdin and stdout; use --no-interactive');
        output = 'interactive';
      }
      const ac = new AbortController();
      // Ctrl-C is how --follow and the interactive view end (exit 0); a one-shot replay keeps
      // the default, so a signal stops it at once and the shell reports 130 / 143.
      const stoppable = flags.follow === true || output === 'interactive';
      const onSigint = () => ac.abort();
      if (stoppable) {
        process.on('SIGINT', onSigint);
        process.on('SIGTERM', onSigint);
      }
      try {
        const replay: Parameters<typeof runReplay>[0]['replay'] = {
          full: flags.full === true,
          color: useColor(flags, process.stdout),
          width: output === 'pretty' && process.stdout.isTTY ? process.stdout.columns : 0,
        };
        if (types) replay.types = types;
        if (agents) replay.agents = agents;
        if (grep) replay.grep = grep;
        await runReplay({
          sessionId,
          settings,
          source: flags.source,
          ...(from !== undefined ? { from } : {}),
          ...(to !== undefined ? { to } : {}),
          output,
          follow: flags.follow === true,
          replay,
          stdout: process.stdout,
          stderr: process.stderr,
          signal: ac.signal,
        });
      } finally {
        process.off('SIGINT', onSigint);
        process.off('SIGTERM', onSigint);
      }
    });

  shared(
    p
      .command('sessions')
      .description('List recent sessions (from Redis when the dashboard consumer runs, else a bounded scan of Kafka).')
      .option('--agent <id>', 'only this agent')
      .addOption(new Option('--status <status>', 'only sessions in this state').choices(['active', 'completed', 'error']))
      .option('--since <time>', 'only sessions active at or after this time (ISO-8601, epoch ms, or relative: -1h)')
      .option('--min-cost <usd>', 'only sessions that cost at least this much (USD)')
      .option('--tool <name>', 'only sessions that called this tool')
      .option('--min-calls <n>', 'with --tool: only sessions that called it at least n times')
      .option('--has-errors', 'only sessions with at least one error (whatever their status)')
      .option('--error-code <code>', 'only sessions with an error carrying this code')
      .addOption(new Option('--sort <key>', 'rank by (descending): last/recent activity, start, cost, events, errors, tool-calls, max-tool-calls (most calls of one tool), duration').choices([...SESSION_SORTS]).default('last'))
      .option('--limit <n>', 'rows to show', '50')
      .addOption(new Option('--source <source>', 'where to list from').choices(['auto', 'redis', 'kafka']).default('auto'))
      .option('--json', 'one JSON document (format kshark.sessions.v1, see docs/kshark.md)'),
  )
    .addHelpText(
      'after',
      `
Examples:
  kshark sessions
  kshark sessions --status error --since -1h
  kshark sessions --agent invoice-agent --min-cost 0.05 --sort cost
  kshark sessions --sort max-tool-calls --limit 5
  kshark sessions --tool stripe.create_invoice --min-calls 100 --sort tool-calls
  kshark sessions --has-errors --since -1h --sort errors
  kshark sessions --json | jq -r '.sessions[].session_id'

From Redis, every ranking and filter covers every session the dashboard consumer holds (its
indexes, see docs/dashboard-consumer.md). Without Redis, a bounded scan of the topic's tail.
A "+" after an event count means the Kafka scan did not reach the session's start.

${EXIT_CODES_HELP}

${SETTINGS_HELP}`,
    )
    .action(async (flags: SharedFlags & { agent?: string; status?: SessionStatus; since?: string; minCost?: string; tool?: string; minCalls?: string; hasErrors?: boolean; errorCode?: string; sort: SessionSort; limit: string; source: 'auto' | 'redis' | 'kafka'; json?: boolean }) => {
      const limit = Number(flags.limit);
      if (!Number.isInteger(limit) || limit <= 0) throw new UsageError(`--limit must be a positive integer, got "${flags.limit}"`);
      const minCost = flags.minCost === undefined ? undefined : Number(flags.minCost);
      if (minCost !== undefined && !Number.isFinite(minCost)) throw new UsageError(`--min-cost must be a number of USD, got "${flags.minCost}"`);
      const minCalls = flags.minCalls === undefined ? undefined : Number(flags.minCalls);
      if (minCalls !== undefined && (!Number.isInteger(minCalls) || minCalls <= 0)) throw new UsageError(`--min-calls must be a positive integer, got "${flags.minCalls}"`);
      if (minCalls !== undefined && flags.tool === undefined) throw new UsageError('--min-calls needs --tool NAME');
      if (flags.tool === '') throw new UsageError('--tool needs a tool name');
      if (flags.errorCode === '') throw new UsageError('--error-code needs a code');
      const since = time(flags.since, '--since');
      const settings = settingsFrom(flags);
      const reader = new SessionReader(settings);
      try {
        const opts: ListSessionsOptions = { source: flags.source, sort: flags.sort, limit };
        if (flags.tool !== undefined) opts.tool = flags.tool;
        if (minCalls !== undefined) opts.minCalls = minCalls;
        if (flags.hasErrors === true) opts.hasErrors = true;
        if (flags.errorCode !== undefined) opts.errorCode = flags.errorCode;
        if (flags.agent !== undefined) opts.agent = flags.agent;
        if (flags.status !== undefined) opts.status = flags.status;
        if (since !== undefined) opts.since = since;
        if (minCost !== undefined) opts.minCost = minCost;
        const rows = await reader.listSessions(opts);
        const source = rows[0]?.source ?? (flags.source === 'auto' ? 'none' : flags.source);
        if (flags.json) process.stdout.write(`${sessionsJson(rows, source)}\n`);
        else {
          const extras = { tools: flags.sort === 'tool-calls' || flags.sort === 'max-tool-calls' || flags.tool !== undefined, duration: flags.sort === 'duration' };
          process.stdout.write(`${sessionsTable(rows, makeChalk(useColor(flags, process.stdout)), Date.now(), extras).join('\n')}\n`);
        }
      } finally {
        await reader.close();
      }
    });

  shared(
    p
      .command('patterns')
      .description('Sessions that match the known failure patterns: retry loops, expensive sessions, error bursts, stuck sessions (from Redis, or from the archive with DuckDB).')
      .addOption(new Option('--source <source>', 'redis (the hot window) or archive (Parquet on S3, read with DuckDB)').choices(['redis', 'archive']).default('redis'))
      .option('--from <time>', 'archive: oldest hour to read (ISO time or "90d", "12h" ago)', '90d')
      .option('--to <time>', 'archive: newest hour to read (default now)')
      .option('--cache-dir <dir>', 'archive: where fetched files are kept (default AGENTTRACE_CACHE_DIR, else ~/.cache/agenttrace)')
      .option('--retry-calls <n>', 'retry loop: one tool called more than n times', '20')
      .option('--min-cost <usd>', 'expensive: cost above this (USD)', '10')
      .option('--burst-errors <n>', 'error burst: at least n errors ...', '5')
      .option('--burst-window <seconds>', '... within this many seconds', '60')
      .option('--stuck-after <minutes>', 'stuck: still active and no event for this many minutes', '10')
      .option('--limit <n>', 'sessions per pattern', '20')
      .option('--json', 'one JSON document (format kshark.patterns.v1, see docs/kshark.md)'),
  )
    .addHelpText(
      'after',
      `
Answers from the dashboard consumer's Redis indexes (the hot window, every session Redis holds),
or with --source archive from the archiver's Parquet files of the last 90 days (--from), which
are copied once into a local cache and queried with DuckDB (files already there are not fetched again).
A retry loop says whether the attempts backed off (median gap between back-to-back calls above 2 s).

Examples:
  kshark patterns
  kshark patterns --source archive --from 7d --json
  kshark patterns --retry-calls 100 --min-cost 5 --stuck-after 30
  kshark patterns --json | jq -r '.retry_loops[].session_id'

${EXIT_CODES_HELP}

${SETTINGS_HELP}`,
    )
    .action(async (flags: SharedFlags & { retryCalls: string; minCost: string; burstErrors: string; burstWindow: string; stuckAfter: string; limit: string; json?: boolean; source: 'redis' | 'archive'; from: string; to?: string; cacheDir?: string }) => {
      const int = (v: string, flag: string, min: number): number => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < min) throw new UsageError(`${flag} must be an integer >= ${min}, got "${v}"`);
        return n;
      };
      const cost = Number(flags.minCost);
      if (!Number.isFinite(cost) || cost < 0) throw new UsageError(`--min-cost must be a number of USD >= 0, got "${flags.minCost}"`);
      const opts = {
        retryCalls: int(flags.retryCalls, '--retry-calls', 1),
        costUsd: cost,
        burstErrors: int(flags.burstErrors, '--burst-errors', 2),
        burstWindowMs: int(flags.burstWindow, '--burst-window', 1) * 1000,
        stuckMs: int(flags.stuckAfter, '--stuck-after', 1) * 60_000,
        limit: int(flags.limit, '--limit', 1),
        now: Date.now(),
      };
      if (flags.source === 'archive') {
        const settings = settingsFrom(flags);
        const from = time(flags.from, '--from');
        const to = time(flags.to, '--to');
        const s3 = createS3Client(settings.s3);
        const progress = makeProgress();
        try {
          // The S3 SDK and the Parquet layout load only for this question: every other command
          // started ~0.2 s slower with them.
          const { archiveCacheDir, fetchArchiveFiles } = await import('./archive-cache.js');
          const fetched = await fetchArchiveFiles({ s3, bucket: settings.s3.bucket, prefix: settings.s3.prefix, topic: settings.topic, from, to, cacheDir: archiveCacheDir(flags.cacheDir), onProgress: progress.update });
          progress.done(fetched);
          // DuckDB's native library is loaded only for this question, not on every kshark start.
          const { findArchivePatterns } = await import('./archive-patterns.js');
          const report = await findArchivePatterns(fetched.files, opts);
          if (flags.json) process.stdout.write(`${patternsJson(report)}\n`);
          else process.stdout.write(`${patternsText(report, makeChalk(useColor(flags, process.stdout))).join('\n')}\n`);
        } finally {
          s3.destroy();
        }
        return;
      }
      const reader = new SessionReader(settingsFrom(flags));
      try {
        const report = await findPatterns(reader, opts);
        if (flags.json) process.stdout.write(`${patternsJson(report)}\n`);
        else process.stdout.write(`${patternsText(report, makeChalk(useColor(flags, process.stdout))).join('\n')}\n`);
      } finally {
        await reader.close();
      }
    });

  shared(
    p
      .command('top')
      .description('Live view of active sessions: current step, events/s, cost so far, alerts.')
      .option('--interval <ms>', 'refresh interval in milliseconds', '1000')
      .option('--limit <n>', 'sessions to show', '20')
      .option('--once', 'print one snapshot as text and exit (no terminal needed)'),
  )
    .addHelpText(
      'after',
      `
Reads the Redis view the dashboard consumer keeps (without it, a bounded Kafka scan every 5 s).
Keys: j/k or ↑/↓ select a session, enter opens its replay (q or Esc there comes back to the
list), q or Ctrl-C quits.

Examples:
  kshark top
  kshark top --interval 500 --limit 40
  kshark top --once

${EXIT_CODES_HELP}

${SETTINGS_HELP}`,
    )
    .action(async (flags: SharedFlags & { interval: string; limit: string; once?: boolean }) => {
      const interval = Number(flags.interval);
      if (!Number.isInteger(interval) || interval < 100) throw new UsageError(`--interval must be an integer >= 100 (ms), got "${flags.interval}"`);
      const limit = Number(flags.limit);
      if (!Number.isInteger(limit) || limit <= 0) throw new UsageError(`--limit must be a positive integer, got "${flags.limit}"`);
      const settings = settingsFrom(flags);
      const reader = new SessionReader(settings);
      const c = makeChalk(useColor(flags, process.stdout));
      let source = '';
      const poll = async () => {
        const sessions = await reader.listSessions({ sort: 'last', limit });
        const kafka = sessions.length > 0 && sessions[0]!.source === 'kafka';
        source = kafka ? 'Kafka scan (start the dashboard consumer for live data)' : 'Redis (dashboard consumer)';
        return { sessions, alerts: await reader.recentAlerts(5), source };
      };
      try {
        if (flags.once || process.stdout.isTTY !== true || process.stdin.isTTY !== true) {
          const snap = await poll();
          process.stdout.write(`${sessionsTable(snap.sessions, c).join('\n')}\n`);
          for (const a of snap.alerts) process.stdout.write(`alert ${sanitizeForTerminal(`${a.rule} ${a.fired_at} ${a.message}`, { singleLine: true })}\n`);
          return;
        }
        const [{ createElement }, { render }, { TopApp }] = await Promise.all([import('react'), import('ink'), import('./top.js')]);
        const first = await poll();
        const every = first.sessions[0]?.source === 'kafka' ? Math.max(interval, 5000) : interval;
        const openReplay = (sessionId: string) => readReplayView(reader, sessionId, c);
        const app = render(createElement(TopApp, { poll, intervalMs: every, chalk: c, limit, openReplay }), { exitOnCtrlC: true });
        await app.waitUntilExit();
      } finally {
        await reader.close();
      }
    });
  return p;
}

async function main(): Promise<void> {
  // A closed pipe (kshark ... | head) is not an error: kshark stops quietly with the code so far.
  guardCliOutput({ name: 'kshark' });
  const p = program();
  p.exitOverride();
  for (const c of p.commands) c.exitOverride();
  try {
    await p.parseAsync(process.argv);
    process.exitCode = EXIT.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander already printed the message (or the help / version). Help asked for is a
      // success; help shown because no command was given is a usage error.
      process.exitCode = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? EXIT.OK : EXIT.USAGE;
      return;
    }
    const code = exitCodeFor(err);
    process.stderr.write(`kshark: ${sanitizeForTerminal(errorMessage(err), { singleLine: true })}\n`);
    if (code === EXIT.NOT_FOUND) process.stderr.write('hint: check the id (kshark sessions lists recent ones) and --topic; older sessions need the archiver.\n');
    if (code === EXIT.FAILURE && process.env.AGENTTRACE_DEBUG) process.stderr.write(`${String((err as Error).stack)}\n`);
    process.exitCode = code;
  }
}

await main();
// Waits for a slow reader of stdout (kshark replay --jsonl | jq) before exiting.
await exitWhenDrained(typeof process.exitCode === 'number' ? process.exitCode : EXIT.OK);
