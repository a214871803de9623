import { describe, expect, it } from 'vitest';
import { DEFAULT_PRICES, costOf, parsePriceTable, priceOf } from '../src/index.js';

describe('model prices', () => {
  it('ship with a version and a source', () => {
    expect(DEFAULT_PRICES.version).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(DEFAULT_PRICES.source).toMatch(/anthropic\.com/);
    expect(Object.keys(DEFAULT_PRICES.models).length).toBeGreaterThan(10);
  });

  it('match exact names, dated ids and provider prefixes, the longest entry first', () => {
    expect(priceOf('claude-sonnet-4-5')).toEqual({ input: 3, output: 15 });
    expect(priceOf('claude-sonnet-4-5-20250929')).toEqual({ input: 3, output: 15 });
    expect(priceOf('gpt-4o-mini-2024-07-18')).toEqual({ input: 0.15, output: 0.6 });
    expect(priceOf('gpt-4o-2024-08-06')).toEqual({ input: 2.5, output: 10 });
    expect(priceOf('openai/gpt-4o')).toEqual({ input: 2.5, output: 10 });
    expect(priceOf('GPT-4o')).toEqual({ input: 2.5, output: 10 });
    // A prefix must end at a separator: gpt-4 is not gpt-4o, and an unknown model has no price.
    expect(priceOf('gpt-4')).toBeUndefined();
    expect(priceOf('my-local-llama')).toBeUndefined();
  });

  it('cost tokens at the table prices', () => {
    expect(costOf('claude-sonnet-4-5', 1_000_000, 100_000)).toBeCloseTo(3 + 1.5, 10);
    expect(costOf('unknown-model', 1000, 1000)).toBeUndefined();
    const own = parsePriceTable({ version: 'mine', models: { 'm-1': { input: 1, output: 2 } } }, 'test');
    expect(costOf('m-1', 2_000_000, 1_000_000, own)).toBe(4);
  });

  it('reject a malformed table, naming where and what', () => {
    expect(() => parsePriceTable({ models: {} }, 'prices.json')).toThrow(/prices\.json: "version"/);
    expect(() => parsePriceTable({ version: 'x', models: { a: { input: -1, output: 1 } } }, 'prices.json')).toThrow(/models\["a"\]/);
  });
});
