/** Test support: a database per test file (cloned from a migrated template), S3 buckets, settings. */
export * from './database.js';
export * from './s3.js';
export * from './tcp-proxy.js';
export * from './polling.js';
export * from './advisory-locks.js';
export * from './network.js';
export * from './prometheus.js';
export * from './spawned-process.js';
export * from './process-group.js';
export * from './finished-job.js';
export * from './upstream-transfer.js';
export * from './cached-product.js';
