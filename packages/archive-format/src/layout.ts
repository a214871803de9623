/**
 * Object layout of the archive, Hive-style so DuckDB, Athena, Spark and Trino read it without a
 * catalog: `<prefix>/<topic>/dt=YYYY-MM-DD/hour=HH/part-<partition>-<firstOffset>-<lastOffset>.parquet`.
 * The hour is that of the events' own `timestamp` (UTC); a file never holds two hours.
 */
export const OFFSET_DIGITS = 20;
const HOUR_MS = 3_600_000;

export interface ObjectName {
  topic: string;
  /** Start of the UTC hour the file's events belong to (epoch ms). */
  hourStart: number;
  partition: number;
  firstOffset: number;
  lastOffset: number;
}

export const hourStartOf = (ms: number): number => Math.floor(ms / HOUR_MS) * HOUR_MS;

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

/** The key prefix of the topic's directory (ends with "/"). */
export function topicPrefix(prefix: string | undefined, topic: string): string {
  return `${prefix ? `${prefix}/` : ''}${topic}/`;
}

/** `dt=YYYY-MM-DD/` directory of a day. */
export function dayDir(hourStart: number): string {
  return `dt=${new Date(hourStart).toISOString().slice(0, 10)}/`;
}

/** `dt=YYYY-MM-DD/hour=HH/` directory of an hour. */
export function hourDir(hourStart: number): string {
  return `${dayDir(hourStart)}hour=${new Date(hourStart).toISOString().slice(11, 13)}/`;
}

/** File name prefix shared by every file of one partition (the trailing "-" keeps 3 from matching 30). */
export function partitionFilePrefix(partition: number): string {
  return `part-${partition}-`;
}

export function objectKey(prefix: string | undefined, name: ObjectName): string {
  return (
    topicPrefix(prefix, name.topic) +
    hourDir(name.hourStart) +
    `${partitionFilePrefix(name.partition)}${pad(name.firstOffset, OFFSET_DIGITS)}-${pad(name.lastOffset, OFFSET_DIGITS)}.parquet`
  );
}

const KEY_RE = /(?:^|\/)dt=(\d{4}-\d{2}-\d{2})\/hour=(\d{2})\/part-(\d+)-(\d+)-(\d+)\.parquet$/;

/** Reads partition, offsets and hour back from a key; undefined for keys that are not archive files. */
export function parseObjectKey(key: string): Omit<ObjectName, 'topic'> | undefined {
  const m = KEY_RE.exec(key);
  if (!m) return undefined;
  const hourStart = Date.parse(`${m[1]}T${m[2]}:00:00.000Z`);
  if (Number.isNaN(hourStart)) return undefined;
  return { hourStart, partition: Number(m[3]), firstOffset: Number(m[4]), lastOffset: Number(m[5]) };
}

/**
 * The directories to list for a time range: whole days where the range covers them, single hours at
 * the edges. Bounded: a range over more than `maxDays` days lists the topic directory instead.
 */
export function listingPrefixes(prefix: string | undefined, topic: string, from?: number, to?: number, maxDays = 400): string[] {
  const base = topicPrefix(prefix, topic);
  if (from === undefined && to === undefined) return [base];
  const start = hourStartOf(from ?? 0);
  const end = hourStartOf(to ?? Date.now());
  if (end < start) return [];
  if (from === undefined || (end - start) / (24 * HOUR_MS) > maxDays) return [base];
  const out: string[] = [];
  let h = start;
  while (h <= end) {
    const dayStart = Math.floor(h / (24 * HOUR_MS)) * 24 * HOUR_MS;
    if (h === dayStart && dayStart + 23 * HOUR_MS <= end) {
      out.push(base + dayDir(h));
      h = dayStart + 24 * HOUR_MS;
    } else {
      out.push(base + hourDir(h));
      h += HOUR_MS;
    }
  }
  return out;
}
