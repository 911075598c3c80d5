import { ScenecacheError } from '@scenecache/core';
import { callDependency, isUnavailableError } from '../src/dependency-call.js';

describe('isUnavailableError', () => {
  it.each<[string, unknown]>([
    ['a refused connection', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })],
    ['a dual-stack AggregateError', new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })], 'connect failed')],
    ['a pg connection exception (08006)', Object.assign(new Error('connection failure'), { code: '08006' })],
    ['too many connections (53300)', Object.assign(new Error('sorry, too many clients already'), { code: '53300' })],
    ['admin shutdown (57P01)', Object.assign(new Error('terminating connection'), { code: '57P01' })],
    ['a pool connect timeout', new Error('timeout exceeded when trying to connect')],
    ['ioredis without offline queue', new Error("Stream isn't writeable and enableOfflineQueue options is false")],
    ['an ioredis command timeout', new Error('Command timed out')],
    ['a wrapped cause', new Error('insert failed', { cause: Object.assign(new Error('x'), { code: 'ECONNRESET' }) })],
    ['service_unavailable', new ScenecacheError('service_unavailable', 'down', { httpStatus: 503 })],
  ])('%s is', (_what, err) => {
    expect(isUnavailableError(err)).toBe(true);
  });

  it.each<[string, unknown]>([
    ['a unique violation (23505)', Object.assign(new Error('duplicate key'), { code: '23505' })],
    ['a syntax error (42601)', Object.assign(new Error('syntax error'), { code: '42601' })],
    ['a plain bug', new TypeError('x is undefined')],
    ['a validation error', new ScenecacheError('invalid_payload', 'bad', { httpStatus: 400 })],
    ['not an error', 'ECONNREFUSED'],
  ])('%s is not', (_what, err) => {
    expect(isUnavailableError(err)).toBe(false);
  });
});

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
