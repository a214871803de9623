/**
 * What a delivery report per record costs the producing thread (docs/decisions/0003).
 *   scripts/bench tracer-reports [--records 200000] [--rounds 3]
 * Produces 1 KB records with the tracer's producer settings and the contract's two headers, keyed
 * over 100 sessions, once asking librdkafka for a report per record and once for failed records
 * only, and prints the time the event loop was busy per record until every record (and report)
 * was handled.
 */
import Kafka from '@confluentinc/kafka-javascript';
import { KafkaAdmin } from '@agenttrace/common';
import { eventHeaders } from '@agenttrace/contract';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg('records', 200_000);
const ROUNDS = arg('rounds', 3);
const brokers = process.env.AGENTTRACE_BROKERS ?? '127.0.0.1:9092';
const topic = `bench-reports-${Date.now().toString(36)}`;
const admin = new KafkaAdmin({ brokers: brokers.split(',') });
await admin.ensureTopic({ topic, num_partitions: 20, replication_factor: -1 });
const value = Buffer.alloc(1000, 65);
const keys = Array.from({ length: 100 }, (_, i) => Buffer.from(`sess_${i}`));
const headers = eventHeaders();

async function run(onlyErrors: boolean): Promise<{ perSec: number; busyUs: number }> {
  const p = new Kafka.Producer({
    'bootstrap.servers': brokers,
    'enable.idempotence': true,
    acks: -1,
    partitioner: 'murmur2_random',
    'compression.type': 'lz4',
    'linger.ms': 5,
    'batch.size': 1_000_000,
    'queue.buffering.max.messages': 500_000,
    'queue.buffering.max.kbytes': 1_048_576,
    ...(onlyErrors ? { 'delivery.report.only.error': true, dr_msg_cb: true } : { dr_cb: true }),
  });
  let reports = 0;
  p.on('delivery-report', () => {
    reports++;
  });
  await new Promise<void>((res, rej) => p.connect({}, (e) => (e ? rej(e) : res())));
  p.setPollInBackground(true);
  const t0 = performance.now();
  const elu0 = performance.eventLoopUtilization();
  for (let i = 0; i < N; i++) {
    p.produce(topic, null, value, keys[i % 100], Date.now(), undefined, headers);
    if (i % 5000 === 4999) await new Promise((r) => setImmediate(r));
  }
  await new Promise<void>((r) => p.flush(60_000, () => r()));
  // Reports reach JavaScript after the flush, at most 100 per turn of the loop: count them all in.
  const deadline = Date.now() + 60_000;
  while (!onlyErrors && reports < N && Date.now() < deadline) await new Promise((r) => setImmediate(r));
  const secs = (performance.now() - t0) / 1000;
  const elu = performance.eventLoopUtilization(elu0);
  await new Promise<void>((r) => p.disconnect(() => r()));
  if (!onlyErrors && reports < N) throw new Error(`only ${reports} of ${N} delivery reports arrived`);
  return { perSec: N / secs, busyUs: (elu.active * 1000) / N };
}

console.log(`delivery reports: ${N} records of 1 KB, 20 partitions, ${ROUNDS} rounds, broker ${brokers}`);
for (let round = 1; round <= ROUNDS; round++) {
  const every = await run(false);
  const errors = await run(true);
  console.log(
    `round ${round}: report per record ${every.busyUs.toFixed(2)} µs busy/record (${every.perSec.toFixed(0)} rec/s)  ` +
      `failed records only ${errors.busyUs.toFixed(2)} µs busy/record (${errors.perSec.toFixed(0)} rec/s)`,
  );
}
await admin.deleteTopic(topic);
admin.close();
