/** The worker's background dependency probes: down vs past the liveness bound, once per outage. */
import { createLogger } from '@scenecache/core';
import { DependencyWatch, type WatchedDependency } from '../src/dependency-watch.js';

const logger = createLogger('test', 'silent');

/** A watch over probes the test switches between answering, failing and hanging, on a fake clock. */
function watch(livenessTimeoutMs = 10_000) {
  let now = 1_000_000;
  const state: Record<WatchedDependency, 'ok' | 'fail' | 'hang'> = { redis: 'ok', postgres: 'ok' };
  const probe = (d: WatchedDependency) => () =>
    state[d] === 'ok' ? Promise.resolve('PONG') : state[d] === 'fail' ? Promise.reject(new Error('ECONNREFUSED')) : new Promise<never>(() => undefined);
  const exceeded: Array<[WatchedDependency, number]> = [];
  const w = new DependencyWatch({
    probes: { redis: probe('redis'), postgres: probe('postgres') },
    livenessTimeoutMs,
    probeTimeoutMs: 20,
    logger,
    now: () => now,
    onLimitExceeded: (d, ms) => exceeded.push([d, ms]),
  });
  return { w, state, exceeded, advance: (ms: number) => (now += ms) };
}

describe('DependencyWatch', () => {
  it('reports a dependency down from its first failed probe, and over the bound only past it, counted from the last answer', async () => {
    const { w, state, exceeded, advance } = watch(10_000);
    await w.probeAll();
    expect([w.down(), w.overLimit()]).toEqual([[], []]);

    state.redis = 'fail';
    advance(2_000);
    await w.probeAll();
    expect([w.down(), w.overLimit()]).toEqual([['redis'], []]);

    advance(8_000); // 10 s since the last answer: not past the bound yet
    await w.probeAll();
    expect(w.overLimit()).toEqual([]);
    expect(exceeded).toEqual([]);

    advance(1);
    await w.probeAll();
    expect(w.overLimit()).toEqual(['redis']);
    expect(exceeded).toEqual([['redis', 10_001]]);

    // Once per outage.
    advance(5_000);
    await w.probeAll();
    expect(exceeded).toHaveLength(1);

    // Back: neither down nor over the bound; a new outage reports again.
    state.redis = 'ok';
    await w.probeAll();
    expect([w.down(), w.overLimit()]).toEqual([[], []]);
    state.redis = 'fail';
    advance(10_001);
    await w.probeAll();
    expect(exceeded.map(([d]) => d)).toEqual(['redis', 'redis']);
  });

  it('a probe that never answers counts as failed after the probe timeout', async () => {
    const { w, state } = watch();
    state.postgres = 'hang';
    await w.probeAll();
    expect(w.down()).toEqual(['postgres']);
  });
});
