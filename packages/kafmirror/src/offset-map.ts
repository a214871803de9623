/**
 * Source offset → target offset of the records one partition mirrored recently, learned from the
 * target's delivery reports of committed transactions. Mirroring keeps order within a partition,
 * so both sequences increase together; a consumer that committed source offset C (the next record
 * it would read) resumes on the target at the copy of the first mirrored record at or after C.
 */
export class OffsetMap {
  readonly capacity: number;
  #src: number[] = [];
  #tgt: number[] = [];
  /** Lowest source offset this map can translate: where this run started, or just past what was trimmed. */
  #floor: number;

  constructor(startOffset: number, capacity = 50_000) {
    this.#floor = startOffset;
    this.capacity = capacity;
  }

  get size(): number {
    return this.#src.length;
  }

  add(sourceOffset: number, targetOffset: number): void {
    const n = this.#src.length;
    // Out-of-order reports would break the binary search; they cannot happen for one partition.
    if (n > 0 && sourceOffset <= this.#src[n - 1]!) return;
    this.#src.push(sourceOffset);
    this.#tgt.push(targetOffset);
    if (n + 1 > this.capacity * 1.25) {
      const drop = n + 1 - this.capacity;
      this.#floor = this.#src[drop - 1]! + 1;
      this.#src.splice(0, drop);
      this.#tgt.splice(0, drop);
    }
  }

  /**
   * The target offset a consumer resumes from, given the source offset it committed; undefined
   * when the answer is not known exactly (C below what this map covers, or nothing mirrored yet).
   */
  translate(committed: number): number | undefined {
    const n = this.#src.length;
    if (n === 0 || committed < this.#floor) return undefined;
    if (committed > this.#src[n - 1]!) return this.#tgt[n - 1]! + 1;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#src[mid]! >= committed) hi = mid;
      else lo = mid + 1;
    }
    return this.#tgt[lo];
  }
}
