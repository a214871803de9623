import type { KafkaConsumer, LibrdKafkaError, Message, Producer } from '@confluentinc/kafka-javascript';
import { stickyKafkaError } from './kafka.js';

/** A librdkafka client that connects and disconnects with callbacks (producer or consumer). */
export type KafkaClient = Producer | KafkaConsumer;

export interface ConnectOptions {
  /** librdkafka's connect timeout (the metadata request that proves the connection), ms. */
  timeoutMs: number;
  /**
   * Turns the client's error into the caller's: `background` is the client's last asynchronous
   * error (see stickyKafkaError), which names a refused SASL handshake that the request itself
   * reports only as a transport failure. Default: the client's error as it is.
   */
  wrapError?: (err: LibrdKafkaError | Error, background: string | undefined) => Error;
  /**
   * Also fail from JavaScript when the client has not answered within this long (ms), and
   * disconnect it: a guard for callers that must not hang on a client that never calls back.
   */
  guardMs?: number;
}

/**
 * Connects a producer or consumer and resolves once it is usable. On failure the binding has
 * already torn the half-made client down; create a new one to try again.
 */
export async function connectClient<C extends KafkaClient>(client: C, options: ConnectOptions): Promise<C> {
  let background: string | undefined;
  const onError = (e: { message?: string }) => {
    background = stickyKafkaError(background, e.message);
  };
  const emitter = client as unknown as NodeJS.EventEmitter;
  emitter.on('event.error', onError);
  let guard: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      if (options.guardMs !== undefined) {
        guard = setTimeout(() => {
          reject(new Error(`no answer within ${options.guardMs} ms`));
          void disconnectWithTimeout(client, 5_000);
        }, options.guardMs);
      }
      (client as KafkaConsumer).connect({ timeout: options.timeoutMs }, (err) => (err ? reject(err) : resolve()));
    });
  } catch (err) {
    throw options.wrapError ? options.wrapError(err as LibrdKafkaError, background) : err;
  } finally {
    clearTimeout(guard);
    emitter.off('event.error', onError);
  }
  return client;
}

/** One consume(max) call: the records already fetched, waiting at most the consumer's consume timeout. */
export function consumeBatch(consumer: KafkaConsumer, max: number): Promise<Message[]> {
  return new Promise<Message[]>((resolve, reject) => consumer.consume(max, (err, msgs) => (err ? reject(err) : resolve(msgs))));
}

export interface DisconnectOptions {
  /** A producer first flushes what it holds for up to this long (the binding's default is 5 s). */
  flushMs?: number;
}

/**
 * Disconnects a client and resolves when it is done or after `timeoutMs`, whichever is first;
 * never rejects. A consumer leaving its group answers the revoke first, which may take a while;
 * a client that never calls back must not hold a shutdown forever.
 */
/**
 * Native teardowns still running. A client's disconnect runs in a libuv worker thread (close, then
 * rd_kafka_destroy, while librdkafka's own threads still deliver events to the binding); a process
 * that exits meanwhile tears V8 and the event loop down under those threads, which can crash it
 * (SIGSEGV). `disconnectWithTimeout` gives its caller control back after `timeoutMs` so a close
 * never hangs, but the teardown stays here until it really finished, and a CLI waits for
 * `nativeTeardowns()` before it exits.
 */
const teardowns = new Set<Promise<void>>();

/** Resolves once every native teardown started so far has finished (true), or after `timeoutMs` (false). */
export async function nativeTeardowns(timeoutMs = 30_000): Promise<boolean> {
  if (teardowns.size === 0) return true;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
  const finished = Promise.all([...teardowns]).then(() => true as const);
  try {
    return await Promise.race([finished, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

export function disconnectWithTimeout(client: KafkaClient, timeoutMs: number, options: DisconnectOptions = {}): Promise<void> {
  const closed = new Promise<void>((resolve) => {
    // A client already disconnecting ignores this call and its callback: its "disconnected" event still comes.
    (client as unknown as NodeJS.EventEmitter).once('disconnected', () => resolve());
    try {
      if (options.flushMs !== undefined && 'flush' in client) (client as Producer).disconnect(options.flushMs, () => resolve());
      else client.disconnect(() => resolve());
    } catch {
      // Not connected (or disconnecting already): nothing of ours runs in the background.
      resolve();
    }
  });
  teardowns.add(closed);
  void closed.then(() => teardowns.delete(closed));
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]).finally(() => clearTimeout(timer));
}
