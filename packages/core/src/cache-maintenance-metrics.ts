/**
 * The counters of the cache's maintenance, as every process that runs it (workers on schedule, the
 * API on `POST /v1/admin/cache/maintenance`) exports them. Kept free of prom-client like
 * queue-depth.ts: each process builds the Counters in its own registry from these configurations.
 */

/** Counter configurations, by what they count (label-free, so `rate()` adds processes up). */
export const CACHE_MAINTENANCE_COUNTERS = Object.freeze({
  evicted: { name: 'scenecache_cache_evictions_total', help: 'Products evicted from the global cache (row and band objects deleted) to bring it under 90 % of GLOBAL_CACHE_MAX_BYTES.' },
  expired: { name: 'scenecache_cache_expiries_total', help: 'Products deleted from the global cache because no job used them for CACHE_UNUSED_TTL_DAYS.' },
  invalid: { name: 'scenecache_cache_invalid_removed_total', help: 'Invalid cache entries deleted with their objects after CACHE_INVALID_RETENTION_DAYS.' },
  removedBytes: { name: 'scenecache_cache_removed_bytes_total', help: 'Bytes of band objects deleted from the global bucket by maintenance (evictions, expiries, invalid entries).' },
  orphans: { name: 'scenecache_cache_orphans_removed_total', help: 'Objects under the global prefix that no cache row described, deleted by maintenance.' },
} as const);

/** What a counter of {@link CACHE_MAINTENANCE_COUNTERS} counts. */
export type CacheMaintenanceCounter = keyof typeof CACHE_MAINTENANCE_COUNTERS;

/**
 * Build every counter of {@link CACHE_MAINTENANCE_COUNTERS} with `make`, e.g.
 * `buildCacheMaintenanceCounters((config) => new Counter({ ...config, registers }))`.
 */
export function buildCacheMaintenanceCounters<T>(make: (config: { name: string; help: string }) => T): Record<CacheMaintenanceCounter, T> {
  const entries = (Object.keys(CACHE_MAINTENANCE_COUNTERS) as CacheMaintenanceCounter[]).map((key) => [key, make(CACHE_MAINTENANCE_COUNTERS[key])] as const);
  return Object.fromEntries(entries) as Record<CacheMaintenanceCounter, T>;
}
