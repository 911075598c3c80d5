/**
 * Fleet-wide memory of upstream files that failed verification. A file whose bytes do not match
 * its `manifest.safe` entry (SHA3-256 or size, see band-download.ts) twice within the TTL is
 * **quarantined**: no worker fetches it again until the TTL ends, and jobs that want it fail at
 * once with `upstream_integrity`. A file corrupt at the source (it happens: a bad archive copy)
 * would otherwise be downloaded in full by every job and every retry, all from the account's
 * monthly quota. One failure is not enough: a transfer can be corrupted on the way.
 *
 * Redis key (under the fleet's prefix): `<prefix>:cdse:integrity-failures:<SAFE name>/<path>` → the
 * count of failures, expiring `ttlSeconds` after the first.
 */
import type { Redis } from 'ioredis';
import { UpstreamError } from '@scenecache/core';

/** Verification failures of one file, within the TTL, after which it is quarantined. */
export const INTEGRITY_FAILURES_TO_QUARANTINE = 2;

/** See the module comment. */
export class IntegrityFailures {
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
    /** Seconds the failures of a file are remembered (the quarantine's length); 0 turns this off. */
    readonly ttlSeconds: number,
  ) {}

  private key(safeName: string, path: string): string {
    return `${this.keyPrefix}:cdse:integrity-failures:${safeName}/${path}`;
  }

  /**
   * Fail when the file is quarantined.
   * @throws UpstreamError `upstream_integrity` (not retryable) when it failed verification
   *   {@link INTEGRITY_FAILURES_TO_QUARANTINE} times within the TTL; Redis errors.
   */
  async assertNotQuarantined(safeName: string, path: string): Promise<void> {
    if (this.ttlSeconds === 0) return;
    const failures = Number((await this.redis.get(this.key(safeName, path))) ?? 0);
    if (failures >= INTEGRITY_FAILURES_TO_QUARANTINE) {
      const ttl = await this.redis.ttl(this.key(safeName, path));
      throw quarantined(safeName, path, failures, ttl);
    }
  }

  /**
   * Count one verification failure of the file (the TTL starts at the first).
   * @returns the error to fail the job with: `cause` itself, or, once the file is quarantined,
   *   `upstream_integrity` not retryable.
   * @throws Redis errors.
   */
  async record(safeName: string, path: string, cause: UpstreamError): Promise<UpstreamError> {
    if (this.ttlSeconds === 0) return cause;
    const key = this.key(safeName, path);
    const [[, failures] = [null, 0]] = ((await this.redis.multi().incr(key).expire(key, this.ttlSeconds, 'NX').exec()) ?? []) as Array<[unknown, number]>;
    return failures >= INTEGRITY_FAILURES_TO_QUARANTINE ? quarantined(safeName, path, failures, this.ttlSeconds, cause) : cause;
  }
}

function quarantined(safeName: string, path: string, failures: number, ttlSeconds: number, cause?: unknown): UpstreamError {
  return new UpstreamError(
    'upstream_integrity',
    `CDSE file ${safeName}/${path} failed verification ${failures} times: not fetched again for ${ttlSeconds} s (UPSTREAM_INTEGRITY_TTL_SECONDS)${cause instanceof Error ? `; last: ${cause.message}` : ''}`,
    { retryable: false, ...(cause === undefined ? {} : { cause }) },
  );
}
