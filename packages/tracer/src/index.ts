export { AgentTracer, recordError } from './tracer.js';
export type { StepContext, LlmUsage, LlmCallOptions, DecisionInput, TracerStats } from './tracer.js';
export { TracerError } from './errors.js';
export type { TracerErrorCode } from './errors.js';
export { TRACER_DEFAULTS, resolveTracerOptions } from './options.js';
export type { TracerOptions, ResolvedTracerOptions } from './options.js';
export { DEFAULT_REDACTED_KEYS, buildRedactor } from './redact.js';
export type { RedactOptions, RedactPattern } from './redact.js';
export { shutdownTracing } from './exit-hooks.js';
