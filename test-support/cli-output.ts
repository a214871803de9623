/**
 * Runs a built CLI with its stdout going to a file, to a slow pipe reader, or to a reader that
 * stops after the first line (`| head -1`), to check that no output is ever cut. Asynchronous,
 * like runNode (see there why).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface OutputRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

function collectStderr(child: ReturnType<typeof spawn>): () => string {
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return () => stderr;
}

function waitExit(child: ReturnType<typeof spawn>, timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}

/** stdout into a file (written synchronously by Node: never cut), as `cli ... > file`. */
export async function runToFile(script: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 60_000): Promise<OutputRun> {
  const dir = mkdtempSync(join(tmpdir(), 'cli-output-'));
  const file = join(dir, 'stdout');
  const fd = openSync(file, 'w');
  try {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', fd, 'pipe'], env });
    const stderr = collectStderr(child);
    const { code, signal } = await waitExit(child, timeoutMs);
    return { code, signal, stdout: readFileSync(file), stderr: stderr() };
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * stdout into a pipe whose reader takes nothing for `pauseMs` and then reads everything, as
 * `cli ... | (sleep 1; cat)`: the pipe fills up and the writer has to wait for it.
 */
export async function runSlowReader(
  script: string,
  args: string[],
  pauseMs = 1500,
  env: NodeJS.ProcessEnv = process.env,
  timeoutMs = 60_000,
  hooks: {
    /** Called with everything on stderr so far, each time more arrives. */
    onStderr?: (stderrSoFar: string, child: ChildProcess) => void;
    /** Also start reading as soon as stderr matches this (e.g. the command's last log line). */
    resumeOn?: RegExp;
  } = {},
): Promise<OutputRun> {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const chunks: Buffer[] = [];
  let reading = false;
  // A 'readable' listener keeps the stream paused without losing anything: what the command wrote
  // waits in the pipe (and the stream's buffer) until the reader starts. Without a listener, Node
  // discards the unread output of a child that exits first.
  const take = (): void => {
    if (!reading) return;
    for (let c = child.stdout.read() as Buffer | null; c !== null; c = child.stdout.read() as Buffer | null) chunks.push(c);
  };
  child.stdout.on('readable', take);
  const read = (): void => {
    reading = true;
    take();
  };
  const resume = setTimeout(read, pauseMs);
  let text = '';
  child.stderr.on('data', (d: Buffer) => {
    text += d.toString();
    hooks.onStderr?.(text, child);
    if (hooks.resumeOn?.test(text)) read();
  });
  const stderr = collectStderr(child);
  try {
    const { code, signal } = await waitExit(child, timeoutMs);
    // A command faster than the pause has exited while the reader still waits: the reader takes
    // what is in the pipe now, as `sleep 1; cat` would.
    read();
    return { code, signal, stdout: Buffer.concat(chunks), stderr: stderr() };
  } finally {
    clearTimeout(resume);
  }
}

/** stdout into a reader that closes the pipe after the first line, as `cli ... | head -1`. */
export async function runHeadOne(script: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 60_000): Promise<OutputRun & { firstLine: string }> {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let head = '';
  let closed = false;
  child.stdout!.on('data', (d: Buffer) => {
    if (closed) return;
    head += d.toString();
    if (head.includes('\n')) {
      closed = true;
      // Closing the read end is what head does: the writer's next write fails with EPIPE.
      child.stdout!.destroy();
    }
  });
  const stderr = collectStderr(child);
  const { code, signal } = await waitExit(child, timeoutMs);
  return { code, signal, stdout: Buffer.from(head), stderr: stderr(), firstLine: head.split('\n')[0] ?? '' };
}
