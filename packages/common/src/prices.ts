import { DEFAULT_PRICES, parsePriceTable, type PriceTable } from '@agenttrace/contract';
import { OptionsError } from './errors.js';

/**
 * A component's `prices` option: undefined takes the shipped table, `false` turns pricing off,
 * anything else must be a valid table (the error names the option).
 */
export function resolvePrices(value: unknown, option: string): PriceTable | false {
  if (value === undefined) return DEFAULT_PRICES;
  if (value === false) return false;
  try {
    return parsePriceTable(value, option);
  } catch (err) {
    throw new OptionsError(option, (err as Error).message.replace(`${option}: `, ''));
  }
}
