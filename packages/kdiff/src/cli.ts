#!/usr/bin/env node
import { writeFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { addSettingsOptions, errorMessage, exitWhenDrained, guardCliOutput, OptionsError, SETTINGS_HELP, settingsFromFlags, sanitizeForTerminal, type AgentTraceSettings, type SettingsFlags } from '@agenttrace/common';
import { EVENT_TYPES, type AgentEvent, type EventType } from '@agenttrace/contract';
import { SessionReader, type SessionReadResult } from '@agenttrace/sessions';
import { compareExpected, compareSessions, type Comparison } from './compare.js';
import { EXIT, EXIT_CODES_HELP, UsageError, hintFor } from './errors.js';
import { readExpectedFile, snapshotSession } from './expected.js';
import { comparisonJson, type SideDescription } from './json-output.js';
import { resolveCompareOptions, type CompareOptions, type ResolvedCompareOptions } from './options.js';
import { makeChalk, renderComparison, type View } from './render.js';


const SOURCES = ['auto', 'redis', 'kafka', 'archive'] as const;
type Source = (typeof SOURCES)[number];

interface SharedFlags extends SettingsFlags {
  source: Source;
  timeout: string;
  color?: boolean;
}

interface FilterFlags {
  ignore: string[];
  defaultIgnore: boolean;
  type: string[];
  agent: string[];
}

interface CompareFlags extends SharedFlags, FilterFlags {
  expected?: string;
  showDivergence?: boolean;
  view: View;
  context: string;
  json?: boolean;
  full?: boolean;
}

interface SnapshotFlags extends SharedFlags, FilterFlags {
  out?: string;
  includeContext?: boolean;
  includeLlmOutput?: boolean;
}

/** Repeatable flag that also takes comma-separated values: `--type a --type b,c`. */
const collect = (value: string, previous: string[]): string[] => [...previous, ...value.split(',').map((s) => s.trim()).filter(Boolean)];

function shared(cmd: Command): Command {
  return addSettingsOptions(cmd)
    .addOption(new Option('--source <source>', 'where to read sessions from (auto tries redis, kafka, archive)').choices([...SOURCES]).default('auto'))
    .option('--timeout <ms>', 'how long to wait for Kafka / Redis to answer', '10000')
    .option('--color', 'force colors')
    .option('--no-color', 'no colors (also when NO_COLOR is set or output is not a terminal)');
}

function filters(cmd: Command): Command {
  return cmd
    .option('--ignore <path>', 'leave this field out of the comparison (dotted path, repeatable; * and ** wildcards)', collect, [])
    .option('--no-default-ignore', 'also compare ids, timestamps, seq, latency, cost, tokens and stack traces')
    .option('--type <type>', `compare only these event types (repeatable or comma-separated): ${EVENT_TYPES.join(', ')}`, collect, [])
    .option('--agent <id>', 'compare only events of these agents (repeatable or comma-separated)', collect, []);
}

function settingsFrom(flags: SharedFlags): AgentTraceSettings {
  return settingsFromFlags(flags);
}

function useColor(flags: SharedFlags): boolean {
  if (flags.color === false) return false;
  if (flags.color === true) return true;
  if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== '') return false;
  return process.stdout.isTTY === true;
}

function intFlag(value: string, flag: string, min: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isInteger(n) || n < min) throw new UsageError(`${flag} must be an integer >= ${min}, got "${value}"`);
  return n;
}

/** The engine's option errors name the option; on the command line they are flags. */
function compareOptions(o: CompareOptions): ResolvedCompareOptions {
  try {
    return resolveCompareOptions(o);
  } catch (err) {
    if (err instanceof OptionsError) throw new UsageError(`--${err.message}`);
    throw err;
  }
}

function filterOptions(flags: FilterFlags, fileDefaults: { ignore?: string[]; types?: EventType[]; agents?: string[] } = {}): CompareOptions {
  const o: CompareOptions = { ignore: [...flags.ignore, ...(fileDefaults.ignore ?? [])], defaultIgnore: flags.defaultIgnore };
  const types = flags.type.length > 0 ? flags.type : fileDefaults.types;
  const agents = flags.agent.length > 0 ? flags.agent : fileDefaults.agents;
  if (types) o.types = types as EventType[];
  if (agents) o.agents = agents;
  return o;
}

function openReader(flags: SharedFlags): SessionReader {
  const timeout = intFlag(flags.timeout, '--timeout', 100);
  return new SessionReader(settingsFrom(flags), { kafkaTimeoutMs: timeout, redisConnectTimeoutMs: Math.min(timeout, 3000), kafkaIdleTimeoutMs: Math.min(timeout, 5000), clientId: 'kdiff' });
}

/** Reads the sessions concurrently; a failure is reported for the first session (in argument order) that failed. */
async function readAll(reader: SessionReader, ids: string[], source: Source): Promise<SessionReadResult[]> {
  const settled = await Promise.allSettled(ids.map((id) => reader.read(id, { source })));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<SessionReadResult>).value);
}

function side(r: SessionReadResult): SideDescription {
  return { kind: 'session', name: r.sessionId, source: r.source, events: r.events.length, warnings: r.warnings };
}

function warn(name: string, r: { warnings: string[] }): void {
  for (const w of r.warnings) process.stderr.write(`kdiff: warning (${sanitizeForTerminal(name, { singleLine: true })}): ${sanitizeForTerminal(w, { singleLine: true })}\n`);
}

function output(cmp: Comparison, a: SideDescription, b: SideDescription, flags: CompareFlags): void {
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(comparisonJson(cmp, a, b), null, 2)}\n`);
    return;
  }
  warn(a.name, a);
  warn(b.name, b);
  const label = (s: SideDescription): string => (s.kind === 'expected' ? `expected ${s.name}` : `${s.name} (${s.source ?? '?'})`);
  const width = process.stdout.isTTY && process.stdout.columns ? process.stdout.columns : 160;
  process.stdout.write(
    renderComparison(
      cmp,
      { chalk: makeChalk(useColor(flags)), labelA: label(a), labelB: label(b), view: flags.view, width, valueWidth: flags.full === true ? Number.POSITIVE_INFINITY : Math.max(40, Math.floor(width / 3)), full: flags.full === true },
      flags.showDivergence === true,
    ),
  );
}

/**
 * The status is known before the output is written: if the reader goes away meanwhile
 * (kdiff ... | head), kdiff still exits with it (see guardCliOutput).
 */
function result(cmp: Comparison): void {
  process.exitCode = cmp.identical ? EXIT.SAME : EXIT.DIFFERENT;
}

async function runCompare(a: string, b: string | undefined, flags: CompareFlags): Promise<number> {
  const context = intFlag(flags.context, '--context', 0);
  if (flags.expected !== undefined && b !== undefined) throw new UsageError('give either a second session or --expected <file>, not both');
  if (flags.expected === undefined && b === undefined) throw new UsageError('missing the second session: kdiff compare <session-a> <session-b> (or <session> --expected <file>)');
  if (flags.expected === undefined && b !== undefined && a === b) process.stderr.write('kdiff: note: comparing a session with itself\n');
  const expected = flags.expected !== undefined ? readExpectedFile(flags.expected) : undefined;
  const options = compareOptions({ ...filterOptions(flags, expected ?? {}), context });
  const reader = openReader(flags);
  try {
    if (expected) {
      const [r] = await readAll(reader, [a], flags.source);
      const cmp = compareExpected(expected.steps, r!.events, options);
      result(cmp);
      output(cmp, { kind: 'expected', name: flags.expected!, events: expected.steps.length, warnings: [] }, side(r!), flags);
      return cmp.identical ? EXIT.SAME : EXIT.DIFFERENT;
    }
    const [ra, rb] = await readAll(reader, [a, b!], flags.source);
    const cmp = compareSessions(ra!.events, rb!.events, options);
    result(cmp);
    output(cmp, side(ra!), side(rb!), flags);
    return cmp.identical ? EXIT.SAME : EXIT.DIFFERENT;
  } finally {
    await reader.close();
  }
}

async function runSnapshot(sessionId: string, flags: SnapshotFlags): Promise<number> {
  const base = filterOptions(flags);
  compareOptions(base); // validates the flags before anything is read
  const reader = openReader(flags);
  let events: AgentEvent[];
  try {
    const [r] = await readAll(reader, [sessionId], flags.source);
    warn(sessionId, r!);
    events = r!.events;
  } finally {
    await reader.close();
  }
  const file = snapshotSession(events, { ...base, sessionId, includeContext: flags.includeContext === true, includeLlmOutput: flags.includeLlmOutput === true });
  const text = `${JSON.stringify(file, null, 2)}\n`;
  if (flags.out === undefined || flags.out === '-') process.stdout.write(text);
  else {
    try {
      writeFileSync(flags.out, text);
    } catch (err) {
      throw new UsageError(`cannot write ${flags.out}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
    }
    process.stderr.write(`kdiff: wrote ${file.steps.length} expected steps of ${sanitizeForTerminal(sessionId, { singleLine: true })} to ${flags.out}\n`);
  }
  return EXIT.SAME;
}

function program(result: { code: number }): Command {
  const p = new Command('kdiff')
    .description('Compare two AI-agent sessions (or a session and its expected steps) and show where they diverge.')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', `\nExamples:\n  kdiff compare sess_a1b2c3 sess_b4c5d6 --show-divergence\n  kdiff snapshot sess_a1b2c3 --out expected.json\n  kdiff compare sess_new --expected expected.json\n\n${EXIT_CODES_HELP}`);

  shared(
    filters(
      p
        .command('compare')
        .description('Align two sessions step by step and show what differs (or check a session against --expected steps).')
        .argument('<session-a>', 'the first session (A), e.g. the one that worked')
        .argument('[session-b]', 'the second session (B), e.g. the one that failed')
        .option('--expected <file>', 'compare <session-a> against an expected-steps file (kdiff.expected.v1) instead of a second session')
        .option('-d, --show-divergence', 'show only the first divergence: context before it, both sides\' reasoning / model / confidence, field diff')
        .addOption(new Option('--view <view>', 'layout of the full comparison').choices(['unified', 'side-by-side']).default('unified'))
        .option('-C, --context <n>', 'matching steps shown around each difference', '3')
        .option('--full', 'print long values and reasoning whole (by default they are cut to fit a line)')
        .option('--json', 'one JSON document (format kdiff.compare.v1, see docs/kdiff.md)'),
    ),
  )
    .addHelpText(
      'after',
      `
A step is identified by what it did: event type, agent, tool (or custom event name) and its input
(an LLM call's model and prompt, a decision's action, a delegation's sub-agent and task). Ids,
timestamps, seq, latency, cost, tokens and stack traces are ignored by default; latency and cost
are reported as deltas. Steps of the same kind at the same place with different fields are
"changed"; the rest are only in A (-) or only in B (+).

The first divergence is the first structural difference: a step only one side took, a different
decision, status, error kind, model, sub-agent or outcome. A retry loop is told as one line
("tool X called 847 times in a row in A (846 failed)"). Per-run data (ids, amounts, text) is
listed after it as data differences.

Examples:
  kdiff compare sess_a1b2c3 sess_b4c5d6
  kdiff compare sess_a1b2c3 sess_b4c5d6 --show-divergence
  kdiff compare sess_a1b2c3 sess_b4c5d6 --show-divergence --full
  kdiff compare sess_a1b2c3 sess_b4c5d6 --view side-by-side --context 1
  kdiff compare sess_a1b2c3 sess_b4c5d6 --ignore payload.output.request_id --ignore 'payload.**.trace_id'
  kdiff compare sess_a1b2c3 sess_b4c5d6 --type tool_call,decision --agent invoice-agent
  kdiff compare sess_a1b2c3 sess_b4c5d6 --json | jq '.divergence'
  kdiff compare sess_nightly --expected expected-steps.json      # CI regression check

${EXIT_CODES_HELP}

${SETTINGS_HELP}`,
    )
    .action(async (a: string, b: string | undefined, flags: CompareFlags) => {
      result.code = await runCompare(a, b, flags);
    });

  shared(
    filters(
      p
        .command('snapshot')
        .description('Write the expected-steps file (kdiff.expected.v1) of a known-good session, for kdiff compare --expected.')
        .argument('<session>', 'the session to take the expected steps from')
        .option('-o, --out <file>', 'write to this file instead of stdout')
        .option('--include-context', 'keep each step\'s context (reasoning, confidence); off because it varies between runs')
        .option('--include-llm-output', 'keep LLM completions (llm_call payload.output); off because they vary between runs'),
    ),
  )
    .addHelpText(
      'after',
      `
The file lists each step as a partial event (event_type, agent_id, status, payload without the
ignored fields). Edit it freely: kdiff compare --expected compares only the fields a step gives.
--ignore / --type / --agent given here are stored in the file and applied when it is compared.

Examples:
  kdiff snapshot sess_a1b2c3 --out expected-steps.json
  kdiff snapshot sess_a1b2c3 --type tool_call,decision --ignore payload.output > expected.json
  kdiff compare sess_nightly --expected expected-steps.json

Exit status: 0 written, 2 trouble (unknown session, unreachable source, bad arguments).

${SETTINGS_HELP}`,
    )
    .action(async (sessionId: string, flags: SnapshotFlags) => {
      result.code = await runSnapshot(sessionId, flags);
    });
  return p;
}

async function main(): Promise<number> {
  // A closed pipe (kdiff ... | head) ends the output early; the comparison itself already ran.
  guardCliOutput({ name: 'kdiff', writeFailureCode: EXIT.TROUBLE });
  const result = { code: EXIT.TROUBLE as number };
  const p = program(result);
  p.exitOverride();
  for (const c of p.commands) c.exitOverride();
  try {
    await p.parseAsync(process.argv);
    return result.code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander already printed the message (or the help / version); help shown because no command was given is a usage error.
      return err.exitCode === 0 ? EXIT.SAME : EXIT.TROUBLE;
    }
    process.stderr.write(`kdiff: ${sanitizeForTerminal(errorMessage(err), { singleLine: true })}\n`);
    const hint = hintFor(err);
    if (hint) process.stderr.write(`hint: ${hint}\n`);
    if (process.env.AGENTTRACE_DEBUG) process.stderr.write(`${String((err as Error).stack)}\n`);
    return EXIT.TROUBLE;
  }
}

// process.exit() would cut a large --json document short on a pipe: wait for stdout first.
await exitWhenDrained(await main());
