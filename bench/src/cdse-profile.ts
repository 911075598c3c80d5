/**
 * The upstream as the scenarios that measure upstream use model it: CDSE's limits for a general
 * user's account (documentation.dataspace.copernicus.eu, "Quotas and Limitations": 4 concurrent
 * downloads, ~20 MB/s each), with file sizes scaled down so a run stays short. At
 * {@link REAL_TIME_SIZE_SCALE} a file streams as long as the real one does at 20 MB/s, so our own
 * fixed costs (wake-ups, cache reads, uploads' completion, the fan-out) weigh as they do in production.
 */

/** Concurrent downloads per CDSE account: UPSTREAM_CONCURRENCY of these scenarios. */
export const CDSE_CONCURRENT_DOWNLOADS = 4;

/** Per-stream rate of the sim, bytes/s: CDSE's 20 MB/s scaled with the file sizes (× 0.1). */
export const STREAM_BYTES_PER_SECOND = 2_000_000;

/** File sizes × 0.1 at {@link STREAM_BYTES_PER_SECOND}: a 10 m band (~120 MB real) streams ~6 s, as at 20 MB/s. */
export const REAL_TIME_SIZE_SCALE = 0.1;
