import { createLogger } from '@scenecache/core';
import { Readiness } from '../src/readiness.js';
import { shutdownSequence } from '../src/shutdown.js';

const logger = createLogger('test', 'silent');

describe('shutdownSequence', () => {
  it('closes in order, goes on after a failing step, and runs once', async () => {
    const order: string[] = [];
    const step = (name: string, fail = false) => ({
      name,
      close: () => {
        order.push(name);
        return fail ? Promise.reject(new Error(`${name} failed`)) : Promise.resolve();
      },
    });
    const shutdown = shutdownSequence([step('readiness'), step('http'), step('queue', true), step('redis'), step('postgres')], logger);

    await Promise.all([shutdown(), shutdown()]);
    await shutdown();

    expect(order).toEqual(['readiness', 'http', 'queue', 'redis', 'postgres']);
  });
});

describe('Readiness', () => {
  it('reports each check, with a deadline, and fails for good once shutdown began', async () => {
    let aborted = false;
    const readiness = new Readiness(
      {
        ok: () => Promise.resolve(),
        broken: () => Promise.reject(new Error('nope')),
        hung: (signal) =>
          new Promise((resolve) => {
            signal.addEventListener('abort', () => {
              aborted = true;
              resolve(undefined);
            });
          }),
      },
      50,
      logger,
    );

    expect(await readiness.check()).toEqual({
      ready: false,
      status: 'failing',
      checks: { ok: 'ok', broken: 'fail', hung: 'fail' },
      errors: { broken: 'nope', hung: 'no answer within 50 ms' },
    });
    expect(aborted).toBe(true);

    readiness.beginShutdown();
    expect(await readiness.check()).toEqual({ ready: false, status: 'shutting_down', checks: {} });
  });
});
