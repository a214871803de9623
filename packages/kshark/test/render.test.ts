import { describe, expect, it } from 'vitest';
import type { AgentEvent } from '@agenttrace/contract';
import { details, makeChalk } from '../src/render.js';
import { makeEvent } from '../../../test-support/stack.js';

const c = makeChalk(false);
const o = { full: false, truncateAt: 200 };
const lines = (event: AgentEvent) => details({ event, index: 0, depth: 0, offsetMs: 0, lastChild: true }, o, c).join('\n');
const ref = { $offload: { bucket: 'b', key: 'p/payloads/sha256/aa/aa.json', size: 10, sha256: 'aa' } };

describe('what replay says about offloaded fields (#14)', () => {
  it('says "restored" only for fields the reader fetched back', () => {
    const e = makeEvent({ payload: { tool: 't', output: 'the value' }, offload: { fields: ['payload.output'], restored: ['payload.output'] } });
    expect(lines(e)).toContain('(offloaded to S3 and restored: payload.output)');
  });

  it('a field whose upload failed was never stored: never "restored"', () => {
    const e = makeEvent({ payload: { tool: 't', output: 'kept inline' }, offload: { fields: ['payload.output'], failed: 'upload to S3 bucket "b" failed: connect ECONNREFUSED' } });
    const text = lines(e);
    expect(text).not.toContain('restored');
    expect(text).toContain('not stored in S3, kept inline — upload failed: upload to S3 bucket "b" failed: connect ECONNREFUSED: payload.output');
  });

  it('a truncated field says only a preview was kept', () => {
    const e = makeEvent({ payload: { tool: 't', output: { $truncated: { size: 5_000_000, sha256: 'aa', preview: '…', stored: false } } }, offload: { fields: ['payload.output'], failed: 'upload timed out' } });
    const text = lines(e);
    expect(text).not.toContain('restored:');
    expect(text).toContain('not stored anywhere, only a preview was kept');
  });

  it('a reference the reader could not fetch says NOT restored', () => {
    const e = makeEvent({ payload: { tool: 't', input: 'x', output: ref }, offload: { fields: ['payload.input', 'payload.output'], restored: ['payload.input'] } });
    const text = lines(e);
    expect(text).toContain('(offloaded to S3 and restored: payload.input)');
    expect(text).toContain('NOT restored — shown as its reference: payload.output');
  });
});
