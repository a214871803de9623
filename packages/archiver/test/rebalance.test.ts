import { afterAll, describe, expect, it } from 'vitest';
import { appendFileSync, rmSync } from 'node:fs';
import type { AgentEvent } from '@agenttrace/contract';
import { Archiver } from '../src/index.js';
import { createTopic, deleteTopic, eventually, makeEvent, sleep, stack, uniqueName } from '../../../test-support/stack.js';
import { ArchiveWatcher, LiveProducer, allCommitted, deletePrefix, downloadPrefix, duck, highWatermarks, s3 } from './helpers.js';

// Members joining and leaving while records keep arriving: every join and leave revokes the
// partitions of the members that stay (eager protocol) and hands them straight back, while a
// consume() call may be collecting and files are open, encoding and uploading. A reader counting
// the archive at any moment must see each committed event exactly once and none missing.
const client = s3();
const PARTITIONS = 6;
const CHURN_MS = Number(process.env.ARCHIVER_CHURN_MS ?? 60_000);
const LOG_FILE = process.env.ARCHIVER_TEST_LOG;
const CHURN_SEED = Number(process.env.ARCHIVER_CHURN_SEED ?? Date.now() % 1_000_000);

/** Small deterministic PRNG, so a failing churn run can be replayed with ARCHIVER_CHURN_SEED. */
function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x1_0000_0000;
  };
}

interface Member {
  name: string;
  archiver: Archiver;
  owned: Set<number>;
}

/** One test's topic, prefix, group, producer and reader. */
class Scenario {
  readonly topic = uniqueName('arch-reb');
  readonly prefix = uniqueName('arch-reb');
  readonly group = uniqueName('arch-reb-group');
  readonly producer = new LiveProducer(this.topic);
  readonly members: Member[] = [];
  /** Unrecoverable failures of any member (an archiver must never stop on its own here). */
  readonly failures: string[] = [];
  readonly watcher = new ArchiveWatcher(client, this.prefix, () => this.committed());
  #trickle: NodeJS.Timeout | undefined;
  #n = 0;
  dir: string | undefined;

  async setup(): Promise<void> {
    await createTopic(this.topic, PARTITIONS);
    await this.producer.connect();
  }

  events(n: number): AgentEvent[] {
    return Array.from({ length: n }, () => makeEvent({ session_id: `sess_reb_${this.#n % 50}_${this.prefix}`, seq: this.#n++ }));
  }

  /** A few events every `everyMs` on every partition, until stopTrickle(). */
  startTrickle(everyMs = 15, perTick = 3): void {
    this.#trickle = setInterval(() => this.producer.send(this.events(perTick)), everyMs);
  }

  stopTrickle(): void {
    if (this.#trickle) clearInterval(this.#trickle);
    this.#trickle = undefined;
  }

  member(name: string, rollAgeMs: number): Member {
    const owned = new Set<number>();
    const archiver = new Archiver({
      kafka: { brokers: stack.brokers, clientId: name },
      topic: this.topic,
      dlqTopic: `${this.topic}.dlq`,
      groupId: this.group,
      s3: { endpoint: stack.s3Endpoint, bucket: stack.s3Bucket, prefix: this.prefix },
      rollRows: 100,
      rollAgeMs,
      closeTimeoutMs: 30_000,
      consumer: { 'session.timeout.ms': 10_000 },
      log: (level, msg, fields) => {
        // ARCHIVER_TEST_LOG=<file>: every member's log lines, to study a failing run.
        if (LOG_FILE) appendFileSync(LOG_FILE, `${new Date().toISOString()} ${name} ${level} ${msg} ${JSON.stringify(fields ?? {})}\n`);
        if (msg === 'partitions assigned') for (const p of (fields?.partitions as number[] | undefined) ?? []) owned.add(p);
        if (msg === 'partitions revoked') for (const p of (fields?.partitions as number[] | undefined) ?? []) owned.delete(p);
        if (level === 'error') this.failures.push(`${name}: ${msg} ${JSON.stringify(fields ?? {})}`);
      },
    });
    void archiver.failed.then((err) => this.failures.push(`${name} failed: ${err.message}`));
    const m = { name, archiver, owned };
    this.members.push(m);
    return m;
  }

  /** Highest offset committed per partition by any member so far. */
  committed(): Record<number, number> {
    const merged: Record<number, number> = {};
    for (const m of this.members) for (const [p, o] of Object.entries(m.archiver.stats.committed)) merged[Number(p)] = Math.max(merged[Number(p)] ?? 0, o);
    return merged;
  }

  /** Stops producing, waits until the group committed everything, then checks the final archive exactly. */
  async finish(): Promise<void> {
    this.stopTrickle();
    await this.producer.settle();
    const high = await highWatermarks(this.topic, PARTITIONS);
    await eventually('every partition committed to its end', () => allCommitted(this.committed(), high), 90_000, 100);
    await this.watcher.stop();
    await this.watcher.sample();
    for (const m of this.members) await m.archiver.close().catch((err: unknown) => this.failures.push(`${m.name} close: ${String(err)}`));
    await this.watcher.sample();

    const produced = this.producer.acked;
    const got = await downloadPrefix(client, this.prefix);
    this.dir = got.dir;
    const glob = `'${this.dir}/**/*.parquet'`;
    const [counts] = await duck(`SELECT count(*)::INT AS n, count(DISTINCT event_id)::INT AS d FROM read_parquet(${glob})`);
    expect(counts).toEqual({ n: produced.length, d: produced.length });
    const ids = new Set((await duck(`SELECT event_id FROM read_parquet(${glob})`)).map((r) => r.event_id as string));
    expect(produced.filter((e) => !ids.has(e.event_id)).length).toBe(0);
  }

  async cleanup(): Promise<void> {
    this.stopTrickle();
    await this.watcher.stop().catch(() => undefined);
    for (const m of this.members) await m.archiver.close().catch(() => undefined);
    await this.producer.close().catch(() => undefined);
    await deletePrefix(client, this.prefix);
    await deleteTopic(this.topic);
    await deleteTopic(`${this.topic}.dlq`);
    this.watcher.cleanup();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}

describe('archivers joining and leaving while records keep arriving', () => {
  const scenarios: Scenario[] = [];
  afterAll(async () => {
    for (const s of scenarios) await s.cleanup();
  });

  it('a member leaves while a trickle flows to the survivor: no stale batch, no duplicate, no gap, at any moment', async () => {
    const sc = new Scenario();
    scenarios.push(sc);
    await sc.setup();
    sc.producer.send(sc.events(600));
    const a = sc.member('arch-reb-a', 700);
    await a.archiver.start();
    await eventually('the first archiver committed a file', () => a.archiver.stats.commits > 0, 30_000, 50);
    sc.watcher.start();
    sc.startTrickle();
    const b = sc.member('arch-reb-b', 700);
    await b.archiver.start();
    await eventually('the second archiver was given partitions', () => b.owned.size > 0 && b.archiver.stats.commits > 0, 30_000, 50);

    // Three leaves, each with the trickle still flowing to the member that stays.
    let leaving = a;
    let staying = b;
    for (let round = 0; round < 3; round++) {
      await sleep(1500);
      const commitsBefore = staying.archiver.stats.commits;
      await leaving.archiver.close();
      await eventually(`${staying.name} owns every partition`, () => staying.owned.size === PARTITIONS, 30_000, 50);
      // The survivor keeps archiving the trickle after the rebalance (age rolls and commits on time).
      await eventually(`${staying.name} commits after the rebalance`, () => staying.archiver.stats.commits > commitsBefore + PARTITIONS, 30_000, 50);
      const joining = sc.member(`arch-reb-${round}`, 700);
      await joining.archiver.start();
      await eventually(`${joining.name} was given partitions`, () => joining.owned.size > 0 && joining.archiver.stats.commits > 0, 30_000, 50);
      leaving = staying;
      staying = joining;
    }
    await sleep(1000);
    await sc.finish();

    expect(sc.failures).toEqual([]);
    expect(sc.watcher.violations).toEqual([]);
    // The reader really ran during the leaves (a sample takes a while on a loaded machine).
    expect(sc.watcher.samples).toBeGreaterThanOrEqual(5);
    console.log(`trickle-during-leave: ${sc.producer.acked.length} events, ${sc.watcher.samples} reader samples, stale records dropped ${sc.members.reduce((n, m) => n + m.archiver.stats.staleDiscarded, 0)}, objects adopted ${sc.members.reduce((n, m) => n + m.archiver.stats.adopted, 0)}`);
  }, 240_000);

  it(`three archivers join and leave at random (${CHURN_MS} ms, seed ${CHURN_SEED}) under a DuckDB reader counting throughout`, async () => {
    const sc = new Scenario();
    scenarios.push(sc);
    await sc.setup();
    const random = prng(CHURN_SEED);
    const slots: Array<Member | undefined> = [undefined, undefined, undefined];
    const pending: Array<Promise<unknown>> = [];
    let started = 0;
    let stopped = 0;
    const join = async (i: number) => {
      const m = sc.member(`arch-churn-${i}-${started++}`, 1000);
      slots[i] = m;
      await m.archiver.start();
    };

    sc.producer.send(sc.events(300));
    await join(0);
    sc.watcher.start();
    sc.startTrickle(20, 3);
    const until = Date.now() + CHURN_MS;
    let nextBurst = Date.now() + 5000;
    while (Date.now() < until) {
      await sleep(1000 + random() * 4000);
      if (Date.now() > nextBurst) {
        sc.producer.send(sc.events(400));
        nextBurst = Date.now() + 5000 + random() * 10_000;
      }
      const i = Math.floor(random() * slots.length);
      const m = slots[i];
      if (m) {
        // Leave without waiting: the next join or leave may overlap this one's drain.
        slots[i] = undefined;
        stopped += 1;
        pending.push(m.archiver.close().catch((err: unknown) => sc.failures.push(`${m.name} close: ${String(err)}`)));
      } else {
        pending.push(
          join(i).catch((err: unknown) => {
            // Left again while still starting: start() says so, which is no failure.
            if ((err as { code?: string }).code !== 'ARCHIVER_STATE') sc.failures.push(`start: ${String(err)}`);
          }),
        );
      }
    }
    await Promise.all(pending);
    if (slots.every((m) => m === undefined)) await join(0);
    await sc.finish();

    expect(sc.failures).toEqual([]);
    expect(sc.watcher.violations).toEqual([]);
    expect(started).toBeGreaterThanOrEqual(3);
    expect(stopped).toBeGreaterThanOrEqual(2);
    console.log(
      `churn: seed ${CHURN_SEED}, ${CHURN_MS} ms, ${started} joins, ${stopped} leaves, ${sc.producer.acked.length} events, ${sc.watcher.samples} reader samples (up to ${sc.watcher.maxRows} rows), stale records dropped ${sc.members.reduce((n, m) => n + m.archiver.stats.staleDiscarded, 0)}, objects adopted ${sc.members.reduce((n, m) => n + m.archiver.stats.adopted, 0)}`,
    );
  }, CHURN_MS + 240_000);
});
