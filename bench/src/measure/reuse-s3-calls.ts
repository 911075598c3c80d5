/**
 * The S3 work of serving a cached product to a new tenant, done bare from the bench process —
 * the baselines a reused job is compared with:
 * - {@link timeBareCopies}: the objects' `CopyObject` calls in parallel, nothing else (the floor);
 * - {@link timePipelineS3Calls}: every S3 call the pipeline makes for such a job, in its order and
 *   through the worker's own `ObjectStore` code (apps/worker/src/cached-bands.ts: HEAD each band
 *   in the global bucket; tenant-copy.ts: HeadBucket + CreateBucket of the tenant bucket, then per
 *   band HEAD + CopyObject, 4 at once).
 * Times in ms (`performance.now()`).
 */
import { performance } from 'node:perf_hooks';
import { CopyObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { encodeCopySource, type ObjectStore } from '@scenecache/storage';

/** An object of the global bucket to copy: its key and size (bytes). */
export interface CachedObject {
  readonly key: string;
  readonly size: number;
}

/** The pipeline's S3 calls for one reused job, bare (ms): in total and by step. */
export interface PipelineS3CallsTiming {
  readonly totalMs: number;
  /** The cache check: a HEAD per band in the global bucket, in parallel. */
  readonly cacheHeadsMs: number;
  /** HeadBucket + CreateBucket of the new tenant bucket. */
  readonly bucketMs: number;
  /** Per band HEAD in the tenant bucket + CopyObject, the bands in parallel. */
  readonly copiesMs: number;
}

/**
 * Copy `objects` from `globalBucket` into `bucket` (which must exist) with parallel bare
 * `CopyObject` calls (same keys). @returns the elapsed ms. @throws the S3 error of any call.
 */
export async function timeBareCopies(client: S3Client, globalBucket: string, bucket: string, objects: readonly CachedObject[]): Promise<number> {
  const t0 = performance.now();
  await Promise.all(objects.map((o) => client.send(new CopyObjectCommand({ Bucket: bucket, Key: o.key, CopySource: encodeCopySource(globalBucket, o.key) }))));
  return performance.now() - t0;
}

/**
 * Make the S3 calls of a reused job for a new tenant whose bucket is `bucket` (not existing yet;
 * `store` must not know it either), as the pipeline makes them. @throws StorageError.
 */
export async function timePipelineS3Calls(store: ObjectStore, globalBucket: string, bucket: string, objects: readonly CachedObject[]): Promise<PipelineS3CallsTiming> {
  const t0 = performance.now();
  await Promise.all(objects.map((o) => store.headObject(globalBucket, o.key)));
  const t1 = performance.now();
  await store.ensureBucket(bucket);
  const t2 = performance.now();
  await Promise.all(
    objects.map(async (o) => {
      await store.headObject(bucket, o.key);
      await store.copyObject({ sourceBucket: globalBucket, sourceKey: o.key, bucket, key: o.key, size: o.size });
    }),
  );
  const t3 = performance.now();
  return { totalMs: t3 - t0, cacheHeadsMs: t1 - t0, bucketMs: t2 - t1, copiesMs: t3 - t2 };
}
