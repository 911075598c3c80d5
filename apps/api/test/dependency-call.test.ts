import { callDependency } from '../src/dependency-call.js';

describe('callDependency', () => {
  it('returns the result in time', async () => {
    await expect(callDependency('Postgres', 1_000, () => Promise.resolve(42))).resolves.toBe(42);
  });

  it('gives up at the deadline with service_unavailable', async () => {
    const started = Date.now();
    const never = new Promise<never>(() => undefined);
    await expect(callDependency('Redis', 50, () => never)).rejects.toMatchObject({ code: 'service_unavailable', httpStatus: 503, retryable: true });
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('maps connection failures to 503 and passes other errors through', async () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    await expect(callDependency('Postgres', 1_000, () => Promise.reject(refused))).rejects.toMatchObject({
      code: 'service_unavailable',
      message: expect.stringContaining('Postgres is unavailable') as string,
    });
    const bug = new TypeError('bug');
    await expect(callDependency('Postgres', 1_000, () => Promise.reject(bug))).rejects.toBe(bug);
    await expect(callDependency('Redis', 1_000, () => Promise.reject(bug), { anyFailure: true })).rejects.toMatchObject({ code: 'service_unavailable' });
  });
});
