/**
 * Settings: defaults that run on one machine, every bad variable listed at once, and the job
 * tuning and failpoint settings the crash tests rely on.
 */
import { downloadJobOptions, DOWNLOAD_JOB_OPTIONS, FAILPOINT_NAMES, loadSettings, ScenecacheError, SETTING_NAMES } from '@scenecache/core';

function settingsError(env: Record<string, string>): string {
  try {
    loadSettings(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ScenecacheError);
    expect((err as ScenecacheError).code).toBe('invalid_settings');
    return (err as Error).message;
  }
  throw new Error('loadSettings accepted a bad environment');
}

describe('loadSettings', () => {
  it('has defaults for one machine, and frozen', () => {
    const s = loadSettings({});
    expect(s).toMatchObject({
      databaseUrl: 'postgres://root@127.0.0.1:5432/scenecache',
      lockDatabaseUrl: 'postgres://root@127.0.0.1:5432/scenecache',
      upstreamConcurrency: 4,
      workerConcurrency: 8,
      jobLockDurationMs: 30_000,
      jobStalledIntervalMs: 15_000,
      jobAttempts: DOWNLOAD_JOB_OPTIONS.attempts,
      jobBackoffMs: DOWNLOAD_JOB_OPTIONS.backoff.delay,
      requireIdempotencyKey: false,
      rateLimitMax: 600,
      rateLimitWindowMs: 60_000,
      failpoints: {},
    });
    expect(Object.isFrozen(s)).toBe(true);
    expect(Object.isFrozen(s.failpoints)).toBe(true);
  });

  it('reads the job tuning and turns it into BullMQ options', () => {
    const s = loadSettings({ JOB_ATTEMPTS: '3', JOB_BACKOFF_MS: '250', JOB_LOCK_DURATION_MS: '4000', JOB_STALLED_INTERVAL_MS: '1000', REQUIRE_IDEMPOTENCY_KEY: 'true' });
    expect(s).toMatchObject({ jobAttempts: 3, jobBackoffMs: 250, jobLockDurationMs: 4000, jobStalledIntervalMs: 1000, requireIdempotencyKey: true });
    expect(downloadJobOptions(s)).toEqual({ ...DOWNLOAD_JOB_OPTIONS, attempts: 3, backoff: { type: 'exponential', delay: 250 } });
  });

  it('reads the rate limit: 0 turns it off, a window under 100 ms or a negative budget is refused', () => {
    expect(loadSettings({ RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_MS: '1500' })).toMatchObject({ rateLimitMax: 3, rateLimitWindowMs: 1500 });
    expect(loadSettings({ RATE_LIMIT_MAX: '0' }).rateLimitMax).toBe(0);
    const message = settingsError({ RATE_LIMIT_MAX: '-1', RATE_LIMIT_WINDOW_MS: '50' });
    expect(message).toContain('RATE_LIMIT_MAX:');
    expect(message).toContain('RATE_LIMIT_WINDOW_MS:');
    expect(settingsError({ RATE_LIMIT_MAX: 'lots' })).toContain('RATE_LIMIT_MAX:');
  });

  it('parses failpoints, and only known names and actions', () => {
    expect(loadSettings({ FAILPOINTS: 'scene-locked=pause,bands-stored=kill' }).failpoints).toEqual({ 'scene-locked': 'pause', 'bands-stored': 'kill' });
    expect(settingsError({ FAILPOINTS: 'bands-stored=explode' })).toMatch(/FAILPOINTS: must be name=pause\|kill\|error/);
    expect(settingsError({ FAILPOINTS: 'nowhere=pause' })).toContain(`FAILPOINTS: names must be among ${FAILPOINT_NAMES.join(', ')}`);
  });

  it('lists every bad variable at once', () => {
    const message = settingsError({ JOB_ATTEMPTS: '0', JOB_LOCK_DURATION_MS: 'soon', REQUIRE_IDEMPOTENCY_KEY: 'maybe', UPSTREAM_CONCURRENCY: '-1' });
    for (const name of ['JOB_ATTEMPTS', 'JOB_LOCK_DURATION_MS', 'REQUIRE_IDEMPOTENCY_KEY', 'UPSTREAM_CONCURRENCY']) expect(message).toContain(`${name}:`);
  });

  it('names every variable it reads', () => {
    for (const name of ['DATABASE_URL', 'LOCK_DATABASE_URL', 'JOB_LOCK_DURATION_MS', 'JOB_STALLED_INTERVAL_MS', 'JOB_ATTEMPTS', 'JOB_BACKOFF_MS', 'REQUIRE_IDEMPOTENCY_KEY', 'RATE_LIMIT_MAX', 'RATE_LIMIT_WINDOW_MS', 'FAILPOINTS']) {
      expect(SETTING_NAMES).toContain(name);
    }
  });
});
