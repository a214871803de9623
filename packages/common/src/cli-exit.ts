import { errorMessage } from './errors.js';
import { CLI_EXIT } from './exit-codes.js';
import { sanitizeForTerminal } from './terminal.js';

/**
 * How every agenttrace command ends. On Linux a write to a full pipe is queued inside Node, and
 * process.exit() drops that queue: `kshark replay --jsonl | jq` lost everything past the last
 * 64 KiB the reader had taken. So a command never calls process.exit() itself: it calls
 * exitWhenDrained(), which waits until stdout and stderr have handed everything to the OS.
 * A reader that goes away (`| head`) is not an error: the command stops quietly (EPIPE).
 */

type Stream = NodeJS.WriteStream;

/** Streams whose reader went away or that failed: nothing more can be written there. */
const broken = new Set<Stream>();
let guarded = false;
/** The code of the first exitWhenDrained call: a later one (the end of main after a forced exit) keeps it. */
let exitingWith: number | undefined;
/** Set when stdout failed for another reason than EPIPE: the output is incomplete, whatever else happened. */
let writeFailure: number | undefined;

export interface CliOutputOptions {
  /** The command's name, prefixing the one line printed when output cannot be written. */
  name: string;
  /**
   * Called once when stdout's reader goes away. A service returns true after starting its
   * graceful stop (as on SIGTERM). Otherwise (false, or no callback) the command exits at once
   * with the code it has so far (process.exitCode, else 0): what it printed was read, the rest
   * was not wanted.
   */
  onBrokenPipe?: () => boolean;
  /**
   * Exit code when stdout fails for another reason (disk full, I/O error): the output is
   * incomplete, so the command must not report success. Default 1.
   */
  writeFailureCode?: number;
}

/**
 * Installs the handlers for a closed or failing stdout/stderr. Call it first thing in a CLI.
 * Later writes to a broken stream are dropped silently (Node discards writes to a destroyed
 * stream), so a command finishing its work never prints "EPIPE" or a stack trace.
 */
export function guardCliOutput(options: CliOutputOptions): void {
  if (guarded) return;
  guarded = true;
  let pipeClosed = false;
  const onError = (stream: Stream) => (err: NodeJS.ErrnoException) => {
    if (broken.has(stream)) return;
    broken.add(stream);
    // A broken stderr only loses diagnostics; the command goes on and still reports its result.
    if (stream !== process.stdout) return;
    if (err.code === 'EPIPE') {
      if (pipeClosed) return;
      pipeClosed = true;
      if (options.onBrokenPipe?.() !== true) void exitWhenDrained(typeof process.exitCode === 'number' ? process.exitCode : CLI_EXIT.OK);
      return;
    }
    writeFailure = options.writeFailureCode ?? CLI_EXIT.FAILURE;
    process.stderr.write(`${options.name}: cannot write the output: ${err.code ?? err.message}\n`);
    void exitWhenDrained(writeFailure);
  };
  process.stdout.on('error', onError(process.stdout));
  process.stderr.on('error', onError(process.stderr));
}

/** True once stdout's reader went away or stdout failed: output written now is lost. */
export function stdoutBroken(): boolean {
  return broken.has(process.stdout);
}

/** Resolves once everything written to the stream so far has been handed to the OS, or the stream is gone. */
export function drained(stream: Stream): Promise<void> {
  return new Promise((resolve) => {
    if (broken.has(stream) || stream.destroyed || stream.writableLength === 0) {
      resolve();
      return;
    }
    const done = (): void => {
      stream.off('close', done);
      stream.off('error', done);
      resolve();
    };
    stream.once('close', done);
    stream.once('error', done);
    // Writes complete in order: the callback of an empty write runs after every earlier one.
    stream.write('', () => done());
  });
}

/**
 * Sets the exit code, waits for stdout and stderr to drain, then exits (explicitly: a stray
 * timer or native handle of a closed client must not keep a finished command alive). A reader
 * slower than the command is waited for, as with any Unix tool writing into a pipe.
 * The first call decides the code (a forced exit on a second signal, then main returning, still
 * exits 130), except that a failed write of stdout always ends with the write-failure code.
 */
export async function exitWhenDrained(code: number): Promise<never> {
  exitingWith ??= code;
  process.exitCode = writeFailure ?? exitingWith;
  await Promise.all([drained(process.stdout), drained(process.stderr)]);
  process.exit(writeFailure ?? exitingWith);
}

/** What runCli needs of a commander program (common does not depend on commander itself). */
export interface CliProgram {
  exitOverride(): unknown;
  readonly commands: readonly { exitOverride(): unknown }[];
  parseAsync(argv: string[]): Promise<unknown>;
}

/**
 * The whole life of a command: guards its output, parses and runs it, prints a failure as one
 * sanitized line (the stack only with AGENTTRACE_DEBUG), and exits once stdout and stderr have
 * drained. Usage errors commander already printed exit 2; asked-for help and version exit 0.
 */
export async function runCli(program: CliProgram, options: { name: string; exitCodeFor: (err: unknown) => number }): Promise<never> {
  guardCliOutput({ name: options.name });
  program.exitOverride();
  for (const c of program.commands) c.exitOverride();
  let code: number = CLI_EXIT.OK;
  try {
    await program.parseAsync(process.argv);
    if (typeof process.exitCode === 'number') code = process.exitCode;
  } catch (err) {
    const commander = (err as { code?: unknown }).code;
    if (typeof commander === 'string' && commander.startsWith('commander.')) {
      code = commander === 'commander.helpDisplayed' || commander === 'commander.version' ? CLI_EXIT.OK : CLI_EXIT.USAGE;
    } else {
      process.stderr.write(`${options.name}: ${sanitizeForTerminal(errorMessage(err), { singleLine: true })}\n`);
      if (process.env.AGENTTRACE_DEBUG) process.stderr.write(`${String((err as Error).stack)}\n`);
      code = options.exitCodeFor(err);
    }
  }
  return exitWhenDrained(code);
}
