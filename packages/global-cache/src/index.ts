/** @scenecache/global-cache — the global cache: `global_scene_cache` and the global bucket, kept in step by one module. */
export * from './global-cache.js';
export * from './global-cache-admin.js';
export * from './cache-maintenance.js';
