/**
 * Base error of every agenttrace package: a stable `code` callers can switch on, whether retrying
 * may help, and the underlying `cause`. Packages subclass it in their own errors.ts.
 */
export class AgentTraceError extends Error {
  readonly code: string;
  readonly retryable: boolean;

  constructor(code: string, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
  }
}

/** Thrown at construction when an option is invalid; the message names the option. */
export class OptionsError extends AgentTraceError {
  readonly option: string;

  constructor(option: string, problem: string) {
    super('INVALID_OPTION', `${option} ${problem}`);
    this.option = option;
  }
}

/** The message of any thrown value, without assuming it is an Error. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  try {
    return String(err);
  } catch {
    return 'unknown error';
  }
}
