import type { KafkaConsumer, LibrdKafkaError, Message, Producer } from '@confluentinc/kafka-javascript';

/** A librdkafka client that connects and disconnects with callbacks (producer or consumer). */
export type KafkaClient = Producer | KafkaConsumer;

const AUTH_TEXT = /auth|sasl|ssl|certificate/i;

/**
 * The client's last asynchronous error, kept sticky for authentication problems: librdkafka
 * follows a refused SASL handshake with "all broker connections are down", and the first one is
 * the one that says what to fix.
 */
export function stickyBackground(previous: string | undefined, next: string | undefined): string | undefined {
  if (previous !== undefined && AUTH_TEXT.test(previous) && !(next !== undefined && AUTH_TEXT.test(next))) return previous;
  return next ?? previous;
}

export interface ConnectOptions {
  /** librdkafka's connect timeout (the metadata request that proves the connection), ms. */
  timeoutMs: number;
  /**
   * Turns the client's error into the caller's: `background` is the client's last asynchronous
   * error (see stickyBackground), which names a refused SASL handshake that the request itself
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
    background = stickyBackground(background, e.message);
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
export function disconnectWithTimeout(client: KafkaClient, timeoutMs: number, options: DisconnectOptions = {}): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    try {
      if (options.flushMs !== undefined && 'flush' in client) (client as Producer).disconnect(options.flushMs, done);
      else client.disconnect(done);
    } catch {
      // Not connected (or disconnecting already): nothing to wait for.
      done();
    }
  });
}
