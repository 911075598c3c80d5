/**
 * @scenecache/cdse-sim — a CDSE-compatible upstream for tests, benchmarks and the demo.
 *
 * It serves any valid Sentinel-2 product name with the real SAFE layout (from the fixture
 * manifests in fixtures/cdse), band files of real size (or scaled) made of deterministic
 * synthetic bytes whose size and SHA3-256 its `manifest.safe` reports, the real token, catalogue,
 * Nodes and 429 protocol, counters of everything served, and faults on demand.
 *
 * Glossary:
 * - band file: a `.jp2` under `GRANULE/<granule>/IMG_DATA/` (L2A: `IMG_DATA/R10m|R20m|R60m/`).
 * - metadata file: the granule's `MTD_TL.xml` (tile: UTM grid, angles) or the product's
 *   `MTD_MSIL1C.xml` / `MTD_MSIL2A.xml`, real files from fixtures/cdse with the product's identity,
 *   tile grid and cloud cover substituted (metadata-template.ts, tile-grid.ts).
 * - download slot: one of `maxConcurrentDownloads` band streams allowed at once (CDSE: 4).
 * - fault: a misbehaviour injected on demand (status, 429, cut, slow, expired token, corrupt, truncate).
 * - sizeScale: the factor applied to real band sizes (1 = real, ~1 GB per product).
 */
export { startCdseSim, cdseSimUrls, type CdseSim, type CdseSimUrls, type ServedMetadataFile, type ServedProductMetadata } from './sim-server.js';
export { DEFAULT_FIXTURES_DIR, DEFAULT_USER, resolveOptions, type CdseSimOptions } from './options.js';
export { fileDownloads, type DownloadCounter, type SimCounters } from './counters.js';
export { parseFault, seededRandom, type ActiveFault, type ChaosOptions, type Fault, type FaultEffect, type FaultMatch, type FaultTarget } from './fault-injection.js';
export { productIdOf } from './product-catalogue.js';
export { METADATA_TEMPLATE_FILES, type MetadataKind } from './metadata-template.js';
export { tileGridOf, TILE_SPAN_METRES, type TileGridParams } from './tile-grid.js';
export { syntheticKey, syntheticSource, sha3OfSource, type ByteSource } from './synthetic-bytes.js';
export { TOKEN_PATH } from './token-routes.js';
export { CDSE_SIM_ENV_NAMES } from './env.js';
export type { SimUser } from './token-service.js';
