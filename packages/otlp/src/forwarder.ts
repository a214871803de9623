import Kafka from '@confluentinc/kafka-javascript';
import type { KafkaConsumer, LibrdKafkaError, Message, TopicPartition } from '@confluentinc/kafka-javascript';
import { parseEvent, type AgentEvent } from '@agenttrace/contract';
import { connectClient, consumeBatch, groupConsumerConfig, createS3Client, describeKafka, disconnectWithTimeout, errorMessage, kafkaError, restoreOffloads, setTimeoutOnlyForFirstMessage, AckingProducer, DeadLetterWriter, type DeadLetterSource } from '@agenttrace/common';
import { OtlpError } from './errors.js';
import { encodeTraceRequest, eventsToSpans, type ExportSpan } from './export.js';
import { postWithRetry, type PostOptions } from './otlp-post.js';
import { resolveForwarderOptions, type ForwarderOptions, type ResolvedForwarderOptions } from './options.js';

const ERR_ASSIGN = -175;

/** Counters since start(), for tests, the CLI's stop line and health checks. */
export interface ForwarderStats {
  /** Records taken from Kafka and put in a request (or dead-lettered). */
  consumed: number;
  /** Spans the backend answered 2xx for (a span sent again after a restart counts again). */
  spansSent: number;
  requests: number;
  /** Attempts that failed and were tried again (429, 5xx, unreachable, timeouts, 401/403/404). */
  retries: number;
  /** Records that are not valid agent events. */
  badRecords: number;
  /** Records whose span the backend refused (a 4xx other than 401/403/404/408/429, alone in its request). */
  refused: number;
  /** Bad and refused records written to the dead-letter topic. */
  deadLettered: number;
  /** Bad and refused records only counted and logged (dead-letter topic off). */
  dropped: number;
  /** Offloaded fields fetched back from S3 before sending. */
  restored: number;
  /** Offloaded fields that could not be fetched: sent as their S3 reference. */
  restoreFailures: number;
  /** Spans the backend accepted the request of but listed as rejected (OTLP partial success). */
  rejectedByBackend: number;
  /** Offsets committed (one per partition per commit). */
  commits: number;
  /** Requests (batches) sent and not yet finished. */
  inFlight: number;
  /** True while fetching is stopped because maxInFlight batches are out. */
  paused: boolean;
  assigned: number[];
  /** Why forwarding stopped for good, if it did (an unexpected failure; restart to retry). */
  halted: string | undefined;
}

interface Item {
  m: Message;
  event?: AgentEvent;
}

interface Batch {
  /** Next offset per partition once this batch is done. */
  next: Map<number, number>;
  /** Assignment epoch of each partition when its records were taken. */
  epochs: Map<number, number>;
  done: boolean;
  ok: boolean;
  work: Promise<void>;
}

class Abandoned extends Error {}

/** A record the exporter cannot send, as it came from Kafka, and why. */
interface DeadRecord {
  source: DeadLetterSource;
  reason: string;
  detail: string;
}

type State = 'new' | 'starting' | 'running' | 'closing' | 'closed';

/** The endpoint as it may be printed: no user info, no query (either can hold a credential). */
export function describeEndpoint(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(unreadable URL)';
  }
}

/**
 * The continuous exporter: follows the agent-events topic as a consumer group and sends every
 * event as an OTLP span to a backend. A batch's offsets are committed only after the backend
 * answered 2xx for it and for every batch taken before it (and after its bad records are in the
 * dead-letter topic), so a crash loses nothing: the next run sends the uncommitted batches again,
 * as the same spans (ids derived from the events). At most maxInFlight requests are out; when
 * they are, the assigned partitions are paused until one finishes, so a slow backend slows the
 * reading instead of filling memory.
 */
export class OtlpForwarder {
  readonly options: ResolvedForwarderOptions;
  readonly #post: PostOptions;
  readonly #resource: Record<string, string>;
  #consumer: KafkaConsumer | undefined;
  #dlq: DeadLetterWriter | undefined;
  #dlqProducer: AckingProducer | undefined;
  #state: State = 'new';
  #loop: Promise<void> | undefined;
  #starting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  /** Ends the loop's waits when closing. */
  readonly #wake = new AbortController();
  /** Closing: failed requests are not retried any more (those in progress still get their answer). */
  readonly #draining = new AbortController();
  /** Ends the requests in flight once the drain time is over. */
  readonly #abandon = new AbortController();
  /** Partition → assignment epoch: a batch taken under an older assignment commits nothing. */
  readonly #assigned = new Map<number, number>();
  #epoch = 0;
  #buffer: Message[] = [];
  #bufferSince = 0;
  readonly #inflight: Batch[] = [];
  #slotFreed: (() => void) | undefined;
  #paused = false;
  #halted: string | undefined;
  #uncommittedSinceSync = false;
  readonly #lastCommitted = new Map<number, number>();
  #lastConsumerError = 0;
  readonly #stats = { consumed: 0, spansSent: 0, requests: 0, retries: 0, badRecords: 0, refused: 0, deadLettered: 0, dropped: 0, restored: 0, restoreFailures: 0, rejectedByBackend: 0, commits: 0 };
  #s3: ReturnType<typeof createS3Client> | undefined;
  #lastRestoreWarning = 0;

  constructor(options: ForwarderOptions) {
    this.options = resolveForwarderOptions(options);
    const o = this.options;
    this.#resource = { 'service.name': o.serviceName };
    if (o.s3) this.#s3 = createS3Client(o.s3);
    this.#post = {
      url: o.endpoint,
      headers: o.headers,
      timeoutMs: o.requestTimeoutMs,
      retryMinMs: o.retryMinMs,
      retryMaxMs: o.retryMaxMs,
      maxRetryAfterMs: o.maxRetryAfterMs,
      stopRetrying: this.#draining.signal,
      onRetry: ({ attempt, reason, waitMs, config }) => {
        this.#stats.retries++;
        // A wrong token or URL is the operator's to fix: say it every time; a busy backend at the 1st and every 10th attempt.
        if (config || attempt === 1 || attempt % 10 === 0) {
          this.options.onLog(config ? 'error' : 'warn', `${describeEndpoint(o.endpoint)} ${reason}${config ? ' (check --endpoint and the headers)' : ''}; attempt ${attempt}, retrying in ${waitMs} ms`);
        }
      },
    };
  }

  stats(): ForwarderStats {
    return {
      ...this.#stats,
      inFlight: this.#inflight.filter((b) => !b.done).length,
      paused: this.#paused,
      assigned: [...this.#assigned.keys()].sort((a, b) => a - b),
      halted: this.#halted,
    };
  }

  /** Connects the dead-letter producer and the consumer, then starts following the topic. */
  start(): Promise<void> {
    if (this.#state !== 'new') return Promise.reject(new OtlpError('FORWARDER_STATE', `start() can be called once, on a new forwarder (this one is ${this.#state})`));
    this.#state = 'starting';
    this.#starting = this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    const o = this.options;
    try {
      if (o.dlqTopic !== false) {
        // The same dead-letter writer as the other services: header hygiene, size step-down, give-up rule.
        this.#dlqProducer = new AckingProducer(o.kafka, {
          clientId: `${o.kafka.clientId ?? 'agenttrace-otlp-forward'}-dlq`,
          label: 'dead-letter producer',
          rdkafka: { 'linger.ms': 5, 'message.timeout.ms': 30_000 },
        });
        await this.#dlqProducer.connect(15_000);
        const producer = this.#dlqProducer;
        this.#dlq = new DeadLetterWriter({
          topic: o.dlqTopic,
          consumer: o.group,
          send: (r) => producer.send(r),
          backoff: { minMs: o.retryMinMs, maxMs: o.retryMaxMs },
          // Retried until it is in (or the forwarder stops): committing past it would lose the record.
          giveUpAfterMs: 0,
          onRetry: (err, attempt) => {
            if (attempt % 10 === 1) o.onLog('warn', `dead-lettering to ${o.dlqTopic} failed, retrying: ${errorMessage(err)}`);
          },
        });
      }
      await this.#connectConsumer();
      if ((this.#state as State) !== 'starting') throw new OtlpError('FORWARDER_STATE', 'closed while starting');
    } catch (err) {
      await this.#shutdown();
      throw err;
    }
    this.#state = 'running';
    this.#loop = this.#run();
    o.onLog('info', `forwarding ${o.topic} as group ${o.group} from ${describeKafka(o.kafka)} to ${describeEndpoint(o.endpoint)}`);
  }

  /**
   * Stops fetching, lets the requests in progress get their answers (up to drainTimeoutMs; a
   * failed one is not retried), commits what the backend took, closes. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const state = this.#state;
    this.#state = 'closing';
    this.#wake.abort();
    if (state === 'new' || state === 'closed') {
      this.#state = 'closed';
      return;
    }
    // A start() in progress sees the close when its connections are up, and releases them itself.
    if (state === 'starting') {
      await this.#starting?.catch(() => undefined);
      return;
    }
    if (this.#loop) await this.#loop;
    // Records fetched but not yet sent are not committed: the group reads them again.
    this.#buffer = [];
    // Requests in progress may finish; one that fails is not retried but left uncommitted, so a
    // stop does not wait out a backoff (or a long Retry-After) of a backend that is down.
    this.#draining.abort();
    const pending = Promise.allSettled(this.#inflight.map((b) => b.work));
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([pending.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), this.options.drainTimeoutMs)))]);
    clearTimeout(timer);
    if (!inTime) {
      const left = this.#inflight.filter((b) => !b.done).length;
      this.options.onLog('warn', `${left} request(s) still unanswered after ${this.options.drainTimeoutMs} ms: abandoned, not committed (sent again on the next start)`);
    }
    this.#abandon.abort();
    await pending;
    await this.#shutdown();
  }

  async #shutdown(): Promise<void> {
    this.#state = 'closing';
    const c = this.#consumer;
    if (c) {
      if (this.#uncommittedSinceSync && this.#lastCommitted.size > 0) {
        // The async commits may still be on their way; this one is waited for.
        try {
          c.commitSync([...this.#lastCommitted].filter(([p]) => this.#assigned.has(p)).map(([partition, offset]) => ({ topic: this.options.topic, partition, offset })));
        } catch (err) {
          this.options.onLog('warn', `final commit failed (those records are sent again on the next start): ${errorMessage(err)}`);
        }
      }
      await disconnectWithTimeout(c, 10_000);
      this.#consumer = undefined;
    }
    await this.#dlqProducer?.close(5_000).catch(() => undefined);
    this.#s3?.destroy();
    this.#state = 'closed';
  }

  async #connectConsumer(): Promise<void> {
    const o = this.options;
    const conf: Record<string, unknown> = {
      // Bounded prefetch: with maxInFlight batches out, this is all that sits in memory besides them.
      ...groupConsumerConfig(o.kafka, { clientId: `${o.kafka.clientId ?? 'agenttrace-otlp-forward'}-consumer`, group: o.group, prefetchKbytes: 8_192, sessionTimeoutMs: o.sessionTimeoutMs }),
      // Eager assignment: offsets are taken over in rebalance_cb.
      'partition.assignment.strategy': 'range',
      rebalance_cb: (err: LibrdKafkaError, assignment: TopicPartition[]) => this.#onRebalance(err, assignment),
    };
    const consumer = new Kafka.KafkaConsumer(conf as never, { 'auto.offset.reset': o.startFrom });
    consumer.on('event.error', (err) => {
      if (Date.now() - this.#lastConsumerError < 10_000) return;
      this.#lastConsumerError = Date.now();
      o.onLog('warn', `Kafka consumer: ${errorMessage(err)}`);
    });
    await connectClient(consumer, { timeoutMs: 15_000, wrapError: (err, background) => kafkaError('connecting the consumer', o.kafka, err, background) });
    consumer.setDefaultConsumeTimeout(100);
    // Wait only for the first record, then take what is already fetched.
    setTimeoutOnlyForFirstMessage(consumer);
    this.#consumer = consumer;
    consumer.subscribe([o.topic]);
  }

  #onRebalance(err: LibrdKafkaError | undefined, assignment: TopicPartition[]): void {
    const c = this.#consumer;
    if (err?.code === ERR_ASSIGN) {
      for (const tp of assignment) this.#assigned.set(tp.partition, ++this.#epoch);
      try {
        // No offsets given: each partition starts at the group's committed offset.
        c?.assign(assignment);
      } catch (e) {
        this.options.onLog('warn', `assigning partitions failed: ${errorMessage(e)}`);
      }
      // New partitions start unpaused; the loop pauses them again if it must.
      this.#paused = false;
      this.options.onLog('info', `assigned ${this.options.topic} partitions ${assignment.map((tp) => tp.partition).join(', ') || '(none)'}`);
      return;
    }
    for (const tp of assignment) this.#assigned.delete(tp.partition);
    // Fetched, unsent records of revoked partitions belong to their next owner now.
    this.#buffer = this.#buffer.filter((m) => this.#assigned.has(m.partition));
    try {
      c?.unassign();
    } catch {
      // Not connected any more: nothing to give back.
    }
  }

  #consume(max: number): Promise<Message[]> {
    const c = this.#consumer;
    if (!c) return Promise.resolve([]);
    return consumeBatch(c, Math.max(1, max));
  }

  #setPaused(paused: boolean): void {
    if (this.#paused === paused || this.#assigned.size === 0) return;
    const list = [...this.#assigned.keys()].map((partition) => ({ topic: this.options.topic, partition }));
    try {
      if (paused) this.#consumer?.pause(list);
      else this.#consumer?.resume(list);
      this.#paused = paused;
    } catch (err) {
      this.options.onLog('warn', `${paused ? 'pausing' : 'resuming'} partitions failed: ${errorMessage(err)}`);
    }
  }

  /** Waits until a batch finishes, ms pass, or close() is called. */
  #waitForSlot(ms: number): Promise<void> {
    const signal = this.#wake.signal;
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        signal.removeEventListener('abort', done);
        if (this.#slotFreed === done) this.#slotFreed = undefined;
        resolve();
      };
      const t = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.#slotFreed = done;
    });
  }

  async #run(): Promise<void> {
    const o = this.options;
    while (this.#state === 'running') {
      try {
        if (this.#inflight.length >= o.maxInFlight || this.#halted !== undefined) {
          this.#setPaused(true);
          // Polling goes on while paused: it serves rebalances and keeps the group membership
          // (max.poll.interval.ms). Records fetched before the pause may still come: kept for later.
          const stray = await this.#consume(o.batchSize);
          this.#take(stray);
          await this.#waitForSlot(250);
          continue;
        }
        this.#setPaused(false);
        this.#take(await this.#consume(o.batchSize - this.#buffer.length));
        if (this.#buffer.length >= o.batchSize || (this.#buffer.length > 0 && Date.now() - this.#bufferSince >= o.lingerMs)) {
          this.#dispatch(this.#buffer.splice(0, o.batchSize));
          this.#bufferSince = Date.now();
        }
      } catch (err) {
        this.#consumeFailed(err);
        await this.#waitForSlot(200);
      }
    }
  }

  /** Said once per 10 s at most: a topic not created yet fails every poll until it is. */
  #consumeFailed(err: unknown): void {
    if (Date.now() - this.#lastConsumerError < 10_000) return;
    this.#lastConsumerError = Date.now();
    const text = errorMessage(err);
    this.options.onLog('warn', /unknown topic/i.test(text) ? `waiting for topic ${this.options.topic} to be created (${text})` : `consuming failed, retrying: ${text}`);
  }

  #take(msgs: Message[]): void {
    if (msgs.length === 0) return;
    if (this.#buffer.length === 0) this.#bufferSince = Date.now();
    for (const m of msgs) if (this.#assigned.has(m.partition)) this.#buffer.push(m);
  }

  #dispatch(msgs: Message[]): void {
    const o = this.options;
    const batch: Batch = { next: new Map(), epochs: new Map(), done: false, ok: false, work: Promise.resolve() };
    const good: Item[] = [];
    const dead: DeadRecord[] = [];
    for (const m of msgs) {
      const epoch = this.#assigned.get(m.partition);
      if (epoch === undefined) continue;
      batch.next.set(m.partition, Math.max(batch.next.get(m.partition) ?? 0, m.offset + 1));
      batch.epochs.set(m.partition, epoch);
      this.#stats.consumed++;
      const r = parseEvent(m.value, { key: m.key === undefined || m.key === null ? null : m.key.toString(), maxBytes: o.maxRecordBytes });
      if (r.ok) good.push({ m, event: r.event });
      else {
        this.#stats.badRecords++;
        dead.push(this.#deadRecord(m, r.reason, r.detail));
      }
    }
    batch.work = this.#deliver(good, dead).then(
      () => {
        batch.ok = true;
      },
      (err: unknown) => {
        if (err instanceof Abandoned) return;
        // Never seen: every expected failure is retried or dead-lettered. Committing past this
        // batch would lose it, so the forwarder stops taking records and says so.
        this.#halted ??= `a batch failed unexpectedly and was not committed: ${errorMessage(err)}`;
        o.onLog('error', `${this.#halted}; forwarding stopped, restart to send it again`);
      },
    ).finally(() => {
      batch.done = true;
      this.#settle();
    });
    this.#inflight.push(batch);
  }

  #deadRecord(m: Message, reason: string, detail: string): DeadRecord {
    return { source: { topic: m.topic, partition: m.partition, offset: m.offset, key: m.key, value: m.value, timestamp: m.timestamp, headers: m.headers }, reason, detail };
  }

  async #deliver(good: Item[], dead: DeadRecord[]): Promise<void> {
    const work: Array<Promise<void>> = [];
    if (this.#s3 !== undefined) await this.#restore(good);
    if (good.length > 0) {
      // One mapping for the whole batch: a request split after a refusal keeps the same spans.
      const mapped = this.#spans(good, dead);
      if (mapped.spans.length > 0) work.push(this.#send(mapped.spans, mapped.items, mapped.body));
    }
    for (const d of dead) work.push(this.#deadLetter(d));
    const results = await Promise.allSettled(work);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Offloaded fields fetched back, so the span carries the value; one that cannot be fetched stays a reference. */
  async #restore(good: Item[]): Promise<void> {
    const s3 = this.#s3!;
    await Promise.all(
      good.map(async (g) => {
        if (!g.event!.offload || g.event!.offload.fields.length === 0) return;
        const { event, failures } = await restoreOffloads(s3, g.event!);
        g.event = event;
        this.#stats.restored += event.offload?.restored?.length ?? 0;
        if (failures.length > 0) {
          this.#stats.restoreFailures += failures.length;
          if (Date.now() - this.#lastRestoreWarning > 10_000) {
            this.#lastRestoreWarning = Date.now();
            this.options.onLog('warn', `could not fetch offloaded fields of event ${event.event_id} (sent as their S3 reference): ${failures.join('; ').slice(0, 300)}`);
          }
        }
      }),
    );
  }

  /**
   * The spans of a batch's events and their request. Mapping does not fail on valid events;
   * should it, the events are mapped one by one and those that fail are dead-lettered (added to `dead`).
   */
  #spans(good: Item[], dead: DeadRecord[]): { spans: ExportSpan[]; items: Item[]; body: Buffer | undefined } {
    try {
      const spans = eventsToSpans(good.map((g) => g.event!));
      return { spans, items: good, body: encodeTraceRequest(spans, this.#resource) };
    } catch {
      const spans: ExportSpan[] = [];
      const items: Item[] = [];
      for (const g of good) {
        try {
          const [s] = eventsToSpans([g.event!]);
          encodeTraceRequest([s!], this.#resource);
          spans.push(s!);
          items.push(g);
        } catch (err) {
          this.#stats.badRecords++;
          dead.push(this.#deadRecord(g.m, 'otlp_mapping_failed', errorMessage(err)));
        }
      }
      return { spans, items, body: undefined };
    }
  }

  /** Sends spans; a request the backend refuses is split until the refused spans are alone, and those are dead-lettered. */
  async #send(spans: ExportSpan[], items: Item[], body?: Buffer): Promise<void> {
    const out = await postWithRetry(body ?? encodeTraceRequest(spans, this.#resource), this.#post, this.#abandon.signal);
    if (out.kind === 'aborted') throw new Abandoned('abandoned');
    if (out.kind === 'ok') {
      this.#stats.requests++;
      this.#stats.spansSent += spans.length;
      if (out.rejected > 0) {
        this.#stats.rejectedByBackend += out.rejected;
        this.options.onLog('warn', `${describeEndpoint(this.options.endpoint)} accepted a request but rejected ${out.rejected} of its ${spans.length} spans (partial success); they are not sent again`);
      }
      return;
    }
    if (spans.length > 1) {
      const half = Math.ceil(spans.length / 2);
      await this.#send(spans.slice(0, half), items.slice(0, half));
      await this.#send(spans.slice(half), items.slice(half));
      return;
    }
    this.#stats.refused++;
    await this.#deadLetter(this.#deadRecord(items[0]!.m, 'otlp_refused', `${describeEndpoint(this.options.endpoint)} answered ${out.status}: ${out.detail}`));
  }

  async #deadLetter(d: DeadRecord): Promise<void> {
    const dlq = this.#dlq;
    const where = `${d.source.topic}[${d.source.partition}]@${d.source.offset}`;
    if (!dlq) {
      this.#stats.dropped++;
      this.options.onLog('warn', `skipped record ${where} (${d.reason}): ${d.detail.slice(0, 200)}`);
      return;
    }
    const out = await dlq.write(d.source, d.reason, d.detail, AbortSignal.any([this.#abandon.signal, this.#draining.signal]));
    if (out.status === 'aborted') throw new Abandoned('abandoned');
    if (out.status === 'given-up') {
      // Refused even with an empty value: nothing smaller is left to write; the record is skipped, loudly.
      this.#stats.dropped++;
      this.options.onLog('error', `record ${where} (${d.reason}) could not be dead-lettered to ${dlq.topic} and is skipped: ${out.why}`);
      return;
    }
    this.#stats.deadLettered++;
    this.options.onLog('warn', `record ${where} (${d.reason}) written to ${dlq.topic}${out.truncated ? ` (value cut to ${out.keptBytes} of ${out.originalBytes} bytes)` : ''}: ${d.detail.slice(0, 200)}`);
  }


  /** Commits the batches finished in order from the oldest, and frees a slot. */
  #settle(): void {
    const commit = new Map<number, number>();
    while (this.#inflight.length > 0 && this.#inflight[0]!.done && this.#inflight[0]!.ok) {
      const b = this.#inflight.shift()!;
      for (const [p, next] of b.next) {
        // A partition revoked (and perhaps given back) since: its new reading starts at the committed offset; do not move it.
        if (this.#assigned.get(p) !== b.epochs.get(p)) continue;
        commit.set(p, Math.max(commit.get(p) ?? 0, next));
      }
    }
    // A batch that failed stays first, so nothing after it is committed: it was abandoned by
    // close(), or an unexpected failure halted the forwarder.
    if (commit.size > 0 && this.#consumer) {
      const list = [...commit].map(([partition, offset]) => ({ topic: this.options.topic, partition, offset }));
      try {
        this.#consumer.commit(list);
        this.#stats.commits += list.length;
        for (const { partition, offset } of list) this.#lastCommitted.set(partition, offset);
        this.#uncommittedSinceSync = true;
      } catch (err) {
        this.options.onLog('warn', `committing offsets failed (those records are sent again after a restart): ${errorMessage(err)}`);
      }
    }
    this.#slotFreed?.();
  }
}
