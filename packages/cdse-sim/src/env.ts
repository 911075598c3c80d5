/**
 * The environment variables `npm run sim` (packages/cdse-sim/dist/main.js) reads, with their
 * defaults; deployment files (compose, k8s) may set only these on the sim's container.
 */
export const CDSE_SIM_ENV_NAMES: readonly string[] = Object.freeze([
  'CDSE_SIM_PORT', // 8089
  'CDSE_SIM_HOST', // 127.0.0.1 (0.0.0.0 in a container)
  'CDSE_SIM_SIZE_SCALE', // 1 = real band sizes
  'CDSE_SIM_MAX_CONCURRENT_DOWNLOADS', // 4, CDSE's per-account limit
  'CDSE_SIM_BYTES_PER_SECOND', // unlimited
  'CDSE_SIM_FIXTURES_DIR', // fixtures/cdse
  'CDSE_SIM_USERNAME', // demo@scenecache.dev
  'CDSE_SIM_PASSWORD', // demo
  'LOG_LEVEL', // info
]);
