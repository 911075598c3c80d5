/** What counts as an outage of Postgres, Redis or S3 (not a failure of the job), for the API and the worker alike. */
import { isDependencyUnavailable, ScenecacheError, UpstreamError } from '@scenecache/core';

/** An AWS SDK v3 service error as the S3 client throws it. */
const s3Error = (name: string, status: number | undefined): Error =>
  Object.assign(new Error(`${name} from S3`), { name, Code: name, $fault: status !== undefined && status >= 500 ? 'server' : 'client', $metadata: { httpStatusCode: status } });
const storageError = (cause: unknown): ScenecacheError => new ScenecacheError('storage_error', 'S3 PutObject failed', { retryable: true, httpStatus: 503, cause });


describe('isDependencyUnavailable', () => {
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
    ['statement timeout (57014)', Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' })],
    ['an ioredis socket timeout', new Error("Socket timeout. Expecting data, but didn't receive any in 15000ms.")],
    ['S3 answering 503 SlowDown', s3Error('SlowDown', 503)],
    ['S3 answering 500 InternalError', s3Error('InternalError', 500)],
    ['an S3 SDK timeout (no answer)', s3Error('TimeoutError', undefined)],
    ['storage_error caused by a refused S3 connection', storageError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9000'), { code: 'ECONNREFUSED' }))],
    ['storage_error caused by an S3 502', storageError(s3Error('BadGateway', 502))],
  ])('%s is', (_what, err) => {
    expect(isDependencyUnavailable(err)).toBe(true);
  });

  it.each<[string, unknown]>([
    ['a unique violation (23505)', Object.assign(new Error('duplicate key'), { code: '23505' })],
    ['a syntax error (42601)', Object.assign(new Error('syntax error'), { code: '42601' })],
    ['a plain bug', new TypeError('x is undefined')],
    ['a validation error', new ScenecacheError('invalid_payload', 'bad', { httpStatus: 400 })],
    ['not an error', 'ECONNREFUSED'],
    ['S3 404 NoSuchKey', s3Error('NoSuchKey', 404)],
    ['S3 403 AccessDenied', s3Error('AccessDenied', 403)],
    ['storage_error caused by S3 NoSuchBucket', storageError(s3Error('NoSuchBucket', 404))],
    ['storage_error without a cause (sizes differ)', storageError(undefined)],
    ['storage_error caused by the upstream stream failing', storageError(new UpstreamError('upstream_unavailable', 'cut', { cause: Object.assign(new Error('x'), { code: 'ECONNRESET' }) }))],
    ['an upstream error caused by a reset connection', new UpstreamError('upstream_unavailable', 'CDSE reset', { retryable: true, cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }) })],
    ['lock_lost', new ScenecacheError('lock_lost', 'lost', { retryable: true, cause: Object.assign(new Error('Connection terminated'), { code: '08006' }) })],
  ])('%s is not', (_what, err) => {
    expect(isDependencyUnavailable(err)).toBe(false);
  });
});

