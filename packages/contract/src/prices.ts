import { readFileSync } from 'node:fs';

/** Prices of one model, in USD per million tokens. */
export interface ModelPrice {
  input: number;
  output: number;
}

/** A model price table: the default one ships as data/model-prices.json; users may supply their own. */
export interface PriceTable {
  /** When the prices were read (the table's version). */
  version: string;
  source?: string;
  models: Record<string, ModelPrice>;
}

function isPrice(v: unknown): v is ModelPrice {
  const p = v as ModelPrice;
  return typeof v === 'object' && v !== null && Number.isFinite(p.input) && p.input >= 0 && Number.isFinite(p.output) && p.output >= 0;
}

/**
 * Checks a price table read from JSON; `where` names its origin in the error (a file path, an
 * option name).
 */
export function parsePriceTable(value: unknown, where: string): PriceTable {
  const t = value as Partial<PriceTable>;
  if (typeof value !== 'object' || value === null) throw new TypeError(`${where}: a price table must be a JSON object`);
  if (typeof t.version !== 'string' || t.version === '') throw new TypeError(`${where}: "version" must be a non-empty string (when the prices were read)`);
  if (typeof t.models !== 'object' || t.models === null) throw new TypeError(`${where}: "models" must map model names to { "input": USD, "output": USD } per million tokens`);
  for (const [model, price] of Object.entries(t.models)) {
    if (!isPrice(price)) throw new TypeError(`${where}: models["${model}"] must be { "input": number >= 0, "output": number >= 0 } (USD per million tokens)`);
  }
  return { version: t.version, source: typeof t.source === 'string' ? t.source : undefined, models: t.models };
}

/** Reads and checks a price table file. */
export function loadPriceTable(path: string): PriceTable {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (err) {
    throw new TypeError(`cannot read the price table ${path}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    throw new TypeError(`${path}: not valid JSON: ${(err as Error).message}`);
  }
  return parsePriceTable(json, path);
}

/** The table shipped with agenttrace (data/model-prices.json); its `version` says when it was read. */
export const DEFAULT_PRICES: PriceTable = parsePriceTable(JSON.parse(readFileSync(new URL('../data/model-prices.json', import.meta.url), 'utf8')), 'data/model-prices.json');

/**
 * The price of a model: an exact name first, then the longest table entry the name starts with
 * (dated or suffixed ids such as `claude-sonnet-4-5-20250929` or `gpt-4o-2024-08-06`), after
 * dropping a provider prefix (`openai/gpt-4o`). Undefined when the table does not know it.
 */
export function priceOf(model: string, table: PriceTable = DEFAULT_PRICES): ModelPrice | undefined {
  const name = model.slice(model.lastIndexOf('/') + 1).toLowerCase();
  const exact = table.models[name];
  if (exact) return exact;
  let best: string | undefined;
  for (const key of Object.keys(table.models)) {
    if (name.startsWith(key) && /^[-@:.]/.test(name.slice(key.length)) && (best === undefined || key.length > best.length)) best = key;
  }
  return best === undefined ? undefined : table.models[best];
}

/** Cost in USD of an LLM call at the table's prices, or undefined for a model it does not know. */
export function costOf(model: string, inputTokens: number, outputTokens: number, table: PriceTable = DEFAULT_PRICES): number | undefined {
  const price = priceOf(model, table);
  if (!price) return undefined;
  return (inputTokens * price.input + outputTokens * price.output) / 1e6;
}
