import { OptionsError } from './errors.js';
import { isQueueFull } from './kafka-codes.js';
import { sleep } from './retry.js';

export interface ProduceWhenRoomOptions {
  /** How many times to try before giving up with the client's queue-full error. */
  attempts: number;
  /** Pause between tries while the queue is full, ms; default 10. */
  intervalMs?: number;
  /** Called before each pause: a client without background polling must poll for deliveries to free room. */
  poll?: () => void;
  /** Stops waiting: the queue-full error is thrown at once. */
  signal?: AbortSignal;
}

/**
 * Calls `produce` (a synchronous produce() of the client) and, while the client's local queue
 * is full, waits for deliveries to make room and tries again: at most `attempts` times, and
 * never past `signal`. Any other error is thrown at once. Returns the number of tries it took.
 */
export async function produceWhenRoom(produce: () => void, options: ProduceWhenRoomOptions): Promise<number> {
  if (!Number.isInteger(options.attempts) || options.attempts < 1) {
    throw new OptionsError('produceWhenRoom options.attempts', `must be an integer >= 1, got ${String(options.attempts)}`);
  }
  const interval = options.intervalMs ?? 10;
  for (let attempt = 1; ; attempt++) {
    try {
      produce();
      return attempt;
    } catch (err) {
      if (!isQueueFull(err) || attempt >= options.attempts || options.signal?.aborted) throw err;
      options.poll?.();
      await sleep(interval, options.signal);
    }
  }
}
