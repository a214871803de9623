import { describe, expect, it } from 'vitest';
import { murmur2, partitionForKey } from '@agenttrace/contract';

const enc = (s: string) => new TextEncoder().encode(s);

describe('murmur2', () => {
  // Vectors from Apache Kafka's UtilsTest.testMurmur2 (the Java client's reference values).
  const vectors: Array<[string, number]> = [
    ['21', -973932308],
    ['foobar', -790332482],
    ['a-little-bit-long-string', -985981536],
    ['a-little-bit-longer-string', -1486304829],
    ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ['abc', 479470107],
  ];
  for (const [input, expected] of vectors) {
    it(`hashes "${input}" like the Java client`, () => {
      expect(murmur2(enc(input))).toBe(expected);
    });
  }

  it('maps keys to partitions with the sign bit masked', () => {
    // -973932308 & 0x7fffffff = 1173551340; % 20 = 0
    expect(partitionForKey('21', 20)).toBe(1173551340 % 20);
    expect(partitionForKey(enc('foobar'), 7)).toBe((-790332482 & 0x7fffffff) % 7);
  });

  it('rejects a non-positive partition count', () => {
    expect(() => partitionForKey('x', 0)).toThrow(/numPartitions/);
  });
});
