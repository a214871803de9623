/**
 * Expected-steps files (format kdiff.expected.v1): what a session is supposed to do, as a list of
 * partial events, so agent teams can check a run against it in CI (`kdiff compare <session>
 * --expected steps.json`). `snapshotSession` writes one from a known-good session.
 */
import { readFileSync } from 'node:fs';
import { EVENT_STATUSES, EVENT_TYPES, type AgentEvent, type EventType } from '@agenttrace/contract';
import { ExpectedFileError } from './errors.js';
import { resolveCompareOptions, type CompareOptions } from './options.js';
import { prune } from './paths.js';
import { filterEvents } from './steps.js';

export const EXPECTED_FORMAT = 'kdiff.expected.v1';

export interface ExpectedStep {
  event_type: EventType;
  agent_id?: string;
  status?: 'ok' | 'error';
  payload?: Record<string, unknown>;
  context?: Record<string, unknown>;
  [field: string]: unknown;
}

export interface ExpectedFile {
  format: typeof EXPECTED_FORMAT;
  /** The session the file was written from (informational). */
  source_session?: string;
  created_at?: string;
  /** More fields to ignore whenever this file is compared (added to --ignore). */
  ignore?: string[];
  /** Compare only these event types / agents (added to --type / --agent when those are not given). */
  types?: EventType[];
  agents?: string[];
  steps: ExpectedStep[];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Validates a parsed expected-steps document; `name` is used in messages. */
export function parseExpected(value: unknown, name: string): ExpectedFile {
  if (!isObject(value)) throw new ExpectedFileError(name, 'must hold a JSON object');
  if (value.format !== EXPECTED_FORMAT) throw new ExpectedFileError(name, `"format" must be "${EXPECTED_FORMAT}", got ${JSON.stringify(value.format) ?? 'nothing'}`);
  if (!Array.isArray(value.steps)) throw new ExpectedFileError(name, '"steps" must be a list of expected steps');
  for (const key of ['ignore', 'agents', 'types'] as const) {
    const v = value[key];
    if (v !== undefined && (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))) throw new ExpectedFileError(name, `"${key}" must be a list of strings`);
  }
  for (const t of (value.types as string[] | undefined) ?? []) {
    if (!(EVENT_TYPES as readonly string[]).includes(t)) throw new ExpectedFileError(name, `"types" has "${t}"; event types are ${EVENT_TYPES.join(', ')}`);
  }
  value.steps.forEach((s: unknown, i: number) => {
    const where = `steps[${i}]`;
    if (!isObject(s)) throw new ExpectedFileError(name, `${where} must be an object`);
    if (!(EVENT_TYPES as readonly string[]).includes(s.event_type as string)) {
      throw new ExpectedFileError(name, `${where}.event_type must be one of ${EVENT_TYPES.join(', ')}, got ${JSON.stringify(s.event_type) ?? 'nothing'}`);
    }
    if (s.agent_id !== undefined && (typeof s.agent_id !== 'string' || s.agent_id === '')) throw new ExpectedFileError(name, `${where}.agent_id must be a non-empty string`);
    if (s.status !== undefined && !(EVENT_STATUSES as readonly string[]).includes(s.status as string)) throw new ExpectedFileError(name, `${where}.status must be "ok" or "error"`);
    if (s.payload !== undefined && !isObject(s.payload)) throw new ExpectedFileError(name, `${where}.payload must be an object`);
    if (s.context !== undefined && !isObject(s.context)) throw new ExpectedFileError(name, `${where}.context must be an object`);
  });
  return value as unknown as ExpectedFile;
}

/** Reads and validates an expected-steps file. */
export function readExpectedFile(path: string): ExpectedFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ExpectedFileError(path, code === 'ENOENT' ? 'no such file' : `cannot be read (${code ?? 'error'})`, err);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ExpectedFileError(path, `is not valid JSON: ${(err as Error).message}`, err);
  }
  return parseExpected(parsed, path);
}

export interface SnapshotOptions extends Pick<CompareOptions, 'ignore' | 'defaultIgnore' | 'types' | 'agents'> {
  /** Keep each step's context (reasoning, confidence); off by default because model reasoning varies run to run. */
  includeContext?: boolean;
  /** Keep LLM completions (payload.output of llm_call); off by default for the same reason. */
  includeLlmOutput?: boolean;
  /** Written into the file as source_session. */
  sessionId?: string;
  now?: Date;
}

/**
 * An expected-steps document from a session: each (filtered) event without the ignored fields,
 * without context and LLM completions unless asked. Ignore patterns and filters are recorded in
 * the file so the CI check compares the same way the snapshot was taken.
 */
export function snapshotSession(events: readonly AgentEvent[], options: SnapshotOptions = {}): ExpectedFile {
  const o = resolveCompareOptions(options);
  const steps: ExpectedStep[] = filterEvents(events, o.types, o.agents).map((e) => {
    const view = prune(e as unknown as Record<string, unknown>, o.patterns);
    const step: ExpectedStep = { event_type: e.event_type, agent_id: e.agent_id, status: e.status };
    if (isObject(view.payload)) {
      const payload = { ...view.payload };
      if (e.event_type === 'llm_call' && !options.includeLlmOutput) delete payload.output;
      step.payload = payload;
    }
    if (options.includeContext && isObject(view.context) && Object.keys(view.context).length > 0) step.context = view.context;
    return step;
  });
  // Built field by field so the file reads top-down: what it is, then how to compare, then the steps.
  const file: Partial<ExpectedFile> = { format: EXPECTED_FORMAT };
  if (options.sessionId !== undefined) file.source_session = options.sessionId;
  file.created_at = (options.now ?? new Date()).toISOString();
  if (o.ignore.length > 0) file.ignore = o.ignore;
  if (o.types) file.types = o.types;
  if (o.agents) file.agents = o.agents;
  file.steps = steps;
  return file as ExpectedFile;
}
