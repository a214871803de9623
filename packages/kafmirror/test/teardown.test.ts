import Kafka from '@confluentinc/kafka-javascript';
import { describe, expect, it } from 'vitest';
import { rdkafkaConfig } from '@agenttrace/common';
import { disconnect, nativeTeardowns } from '../src/kafka-io.js';
import { kafkaConn, uniqueName } from '../../../test-support/stack.js';

// kafmirror exits only after every native client finished closing: process exit under a running
// rd_kafka_destroy (a disconnect that outlived its caller's timeout) can end in SIGSEGV (#14).
describe('native client teardown', () => {
  it('disconnect() may return before the client is closed, nativeTeardowns() only after', async () => {
    const consumer = new Kafka.KafkaConsumer({ ...rdkafkaConfig(kafkaConn()), 'group.id': uniqueName('teardown') }, {});
    await new Promise<void>((res, rej) => consumer.connect({ timeout: 15_000 }, (err) => (err ? rej(err) : res())));
    const order: string[] = [];
    consumer.once('disconnected', () => order.push('client closed'));
    // A zero timeout: the caller goes on while the worker thread may still be closing the client.
    const returned = disconnect(consumer, 0).then(() => order.push('disconnect() returned'));
    const waited = nativeTeardowns(30_000).then((ok) => order.push(`nativeTeardowns() ${ok}`));
    await Promise.all([returned, waited]);
    expect(order.indexOf('client closed')).toBeGreaterThanOrEqual(0);
    expect(order.indexOf('nativeTeardowns() true')).toBeGreaterThan(order.indexOf('client closed'));
    // Nothing left: the next wait returns at once.
    expect(await nativeTeardowns(1)).toBe(true);
  });
});
