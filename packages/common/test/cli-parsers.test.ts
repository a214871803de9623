/** The shared flag parsers (#15): one duration syntax with decimals, and 0 only where it means something. */
import { describe, expect, it } from 'vitest';
import { OptionsError, parseCount, parseDurationMs } from '../src/index.js';

describe('parseDurationMs', () => {
  it('takes units, decimals and plain milliseconds', () => {
    expect(parseDurationMs('500ms', '--x')).toBe(500);
    expect(parseDurationMs('10s', '--x')).toBe(10_000);
    expect(parseDurationMs('1.5m', '--x')).toBe(90_000);
    expect(parseDurationMs('2h', '--x')).toBe(7_200_000);
    expect(parseDurationMs(' 250 ', '--x')).toBe(250);
  });

  it('rejects 0 unless it means something, and anything else that is not a duration', () => {
    expect(() => parseDurationMs('0', '--roll-age')).toThrow('--roll-age must be more than 0, got "0"');
    expect(() => parseDurationMs('0s', '--roll-age')).toThrow(OptionsError);
    expect(parseDurationMs('0', '--batch-linger', { zero: true })).toBe(0);
    for (const bad of ['soon', '-5s', '1d', '', '1e3']) expect(() => parseDurationMs(bad, '--lag-threshold')).toThrow(/--lag-threshold must be a duration/);
    expect(() => parseDurationMs('2h', '--x', { max: 60_000 })).toThrow('--x must be at most 60000 ms');
  });
});

describe('parseCount', () => {
  it('takes whole numbers; 0 only where it means something', () => {
    expect(parseCount('5000', '--max-batch')).toBe(5000);
    expect(() => parseCount('0', '--max-batch')).toThrow('--max-batch must be a whole number 1 or more, got "0"');
    expect(parseCount('0', '--metrics-port', { zero: true, max: 65535 })).toBe(0);
    expect(() => parseCount('70000', '--metrics-port', { zero: true, max: 65535 })).toThrow('from 0 to 65535');
    for (const bad of ['many', '1.5', '-1', '', '1e3', '0x10']) expect(() => parseCount(bad, '--roll-rows')).toThrow(/--roll-rows must be a whole number/);
  });
});
