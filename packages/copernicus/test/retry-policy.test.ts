import { backoffDelayMs, DEFAULT_RETRY_OPTIONS, parseRetryAfterMs, resolveRetryOptions, sleep } from '../src/retry-policy.js';

describe('backoffDelayMs (full jitter)', () => {
  const opts = { baseDelayMs: 100, maxDelayMs: 1_000 };

  it('grows as base·2^step and is capped', () => {
    const top = (step: number): number => backoffDelayMs(step, opts, () => 0.999999);
    expect([0, 1, 2, 3, 4, 5, 50].map(top)).toEqual([99, 199, 399, 799, 999, 999, 999]);
  });

  it('is 0 at the bottom of the jitter range', () => {
    expect(backoffDelayMs(3, opts, () => 0)).toBe(0);
  });

  it('stays within [0, ceiling) for random jitter', () => {
    for (let step = 0; step < 10; step++) {
      for (let i = 0; i < 100; i++) {
        const d = backoffDelayMs(step, opts);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThan(Math.min(1_000, 100 * 2 ** step));
        expect(Number.isInteger(d)).toBe(true);
      }
    }
  });
});

describe('parseRetryAfterMs', () => {
  const now = Date.parse('2025-04-07T18:21:54Z');

  it.each([
    ['120', 120_000],
    ['0', 0],
    [' 7 ', 7_000],
    ['Mon, 07 Apr 2025 18:22:04 GMT', 10_000],
    ['Mon, 07 Apr 2025 18:00:00 GMT', 0],
  ])('%j → %d ms', (header, ms) => {
    expect(parseRetryAfterMs(header, now)).toBe(ms);
  });

  it.each([null, undefined, '', '-5', '1.5', 'soon'])('%j → undefined', (header) => {
    expect(parseRetryAfterMs(header, now)).toBeUndefined();
  });
});

describe('resolveRetryOptions', () => {
  it('fills defaults and freezes', () => {
    const o = resolveRetryOptions({ attempts: 2, baseDelayMs: undefined });
    expect(o).toEqual({ ...DEFAULT_RETRY_OPTIONS, attempts: 2 });
    expect(Object.isFrozen(o)).toBe(true);
  });

  it('rejects nonsense', () => {
    expect(() => resolveRetryOptions({ attempts: 0 })).toThrow(RangeError);
    expect(() => resolveRetryOptions({ maxDelayMs: -1 })).toThrow(RangeError);
    expect(() => resolveRetryOptions({ baseDelayMs: Number.NaN })).toThrow(RangeError);
  });
});

describe('sleep', () => {
  it('rejects with the signal reason when aborted', async () => {
    const ac = new AbortController();
    const p = sleep(10_000, ac.signal);
    const reason = new Error('shutting down');
    ac.abort(reason);
    await expect(p).rejects.toBe(reason);
  });

  it('waits about the given time', async () => {
    const t = Date.now();
    await sleep(30);
    expect(Date.now() - t).toBeGreaterThanOrEqual(25);
  });
});
