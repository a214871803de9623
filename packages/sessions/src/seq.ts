import type { AgentEvent } from '@agenttrace/contract';

const MAX_LINES = 20;

function ranges(sorted: number[]): string {
  const parts: string[] = [];
  let i = 0;
  while (i < sorted.length && parts.length < 8) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  if (i < sorted.length) parts.push('...');
  return parts.join(', ');
}

/**
 * Gaps and duplicates in `seq`, per (session_id, emitter_id). A gap is a missing number between
 * the lowest and highest seq seen (a range read may legitimately start after 0); a duplicate is
 * a seq seen more than once, either the same event delivered twice or two events claiming it.
 * Returns human-readable lines, at most 20 (then a line saying how many more).
 */
export function seqAnomalies(events: AgentEvent[]): string[] {
  const byEmitter = new Map<string, Map<number, string[]>>();
  for (const e of events) {
    const k = `${e.session_id}\u0000${e.emitter_id}`;
    let seen = byEmitter.get(k);
    if (!seen) byEmitter.set(k, (seen = new Map()));
    const ids = seen.get(e.seq);
    if (ids) ids.push(e.event_id);
    else seen.set(e.seq, [e.event_id]);
  }
  const out: string[] = [];
  for (const [k, seen] of byEmitter) {
    const [sessionId, emitterId] = k.split('\u0000') as [string, string];
    const who = `session ${sessionId} emitter ${emitterId}`;
    const seqs = [...seen.keys()].sort((a, b) => a - b);
    const missing: number[] = [];
    let missingCount = 0;
    for (let i = 1; i < seqs.length; i++) {
      for (let s = seqs[i - 1]! + 1; s < seqs[i]!; s++) {
        missingCount++;
        if (missing.length < 1000) missing.push(s);
      }
    }
    if (missingCount > 0) out.push(`${who}: gap, ${missingCount} seq missing (${ranges(missing)})`);
    for (const s of seqs) {
      const ids = seen.get(s)!;
      if (ids.length < 2) continue;
      const distinct = new Set(ids).size;
      out.push(
        distinct === 1
          ? `${who}: duplicate, seq ${s} delivered ${ids.length} times (event ${ids[0]})`
          : `${who}: duplicate, seq ${s} used by ${distinct} different events`,
      );
    }
  }
  if (out.length > MAX_LINES) {
    const more = out.length - MAX_LINES;
    out.length = MAX_LINES;
    out.push(`... and ${more} more seq anomalies`);
  }
  return out;
}
