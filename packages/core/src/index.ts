/**
 * @scenecache/core — the domain: Sentinel-2 product names and bands, SAFE manifests, tenant ids,
 * the download job contract, settings and errors.
 *
 * Glossary:
 * - product / scene: one Sentinel-2 SAFE product; its name without `.SAFE` is the scene id.
 * - band: one spectral band file (JPEG2000) of a product, e.g. B04 (red, 10 m).
 * - tile: the MGRS 100 km square a product covers (`32TNS`); granule: the product's tile folder.
 * - global bucket: the one copy of every downloaded band; tenant bucket: each tenant's copy.
 * - cache hit: a band served from the global bucket (`reused`), not from upstream.
 */
export * from './errors.js';
export * from './dependency-outage.js';
export * from './product-name.js';
export * from './bands.js';
export * from './safe-manifest.js';
export * from './product-metadata.js';
export * from './tenant-id.js';
export * from './download-job.js';
export * from './settings.js';
export * from './cli.js';
export * from './logger.js';
export * from './failpoint.js';
export * from './queue-depth.js';
export * from './cache-maintenance-metrics.js';
