/**
 * Negative caching of catalogue lookups: a product the CDSE catalogue answered "not found" for is
 * remembered fleet-wide (Redis, shared like the token) for a TTL, so repeated requests for it cost
 * no upstream call. Products appear in the catalogue some hours after sensing, so the TTL is short
 * enough for a product published later to be found then.
 *
 * Redis key (under the fleet's prefix): `<prefix>:cdse:not-found:<SAFE name>` → the catalogue's
 * message, with the TTL.
 */
import type { Redis } from 'ioredis';

/** The fleet's memory of products the catalogue does not have. */
export class NotFoundCache {
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
    /** Seconds a "not found" answer is trusted; 0 turns the cache off. */
    readonly ttlSeconds: number,
  ) {}

  private key(safeName: string): string {
    return `${this.keyPrefix}:cdse:not-found:${safeName}`;
  }

  /** The remembered "not found" message of `safeName`, or undefined (also when the cache is off). */
  async get(safeName: string): Promise<string | undefined> {
    if (this.ttlSeconds === 0) return undefined;
    return (await this.redis.get(this.key(safeName))) ?? undefined;
  }

  /** Remember that the catalogue does not have `safeName` (no-op when the cache is off). */
  async remember(safeName: string, message: string): Promise<void> {
    if (this.ttlSeconds === 0) return;
    await this.redis.set(this.key(safeName), message, 'EX', this.ttlSeconds);
  }
}
