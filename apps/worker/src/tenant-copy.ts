/**
 * Step 6: fan-out. Each requested band is server-side copied from the global bucket into the
 * tenant's bucket under the same key (S3 CopyObject; UploadPartCopy over 5 GB — see ObjectStore).
 * An object already in the tenant bucket with the same size and SHA3-256 metadata is skipped:
 * ETags can't be compared because a copy of a multipart object gets a different ETag.
 */
import pLimit from 'p-limit';
import { ScenecacheError } from '@scenecache/core';
import type { CachedBand } from '@scenecache/db';
import { StorageError, type ObjectStore } from '@scenecache/storage';
import { SHA3_METADATA_KEY } from '@scenecache/global-cache';

/**
 * A band's object left the global bucket between the job's cache read and its copy (the
 * maintenance evicted or expired the product, or an admin invalidated the band): the job reads the
 * cache again and downloads what is missing. Code `storage_error`, retryable.
 */
export class CopySourceGoneError extends ScenecacheError {
  constructor(
    readonly bandId: string,
    readonly sourceKey: string,
    cause: unknown,
  ) {
    super('storage_error', `the cached object of band ${bandId} (${sourceKey}) left the global bucket during the copy`, { retryable: true, httpStatus: 503, cause });
  }
}

/** Result of {@link copyToTenant}. */
export interface TenantCopy {
  /** band id → object key in the tenant bucket. */
  keys: Record<string, string>;
  /** band id → `s3://bucket/key`. */
  objects: Record<string, string>;
  /** Bytes copied (skipped objects count 0). */
  bytesCopied: number;
}

/**
 * Copy `bands` (band id → global cache entry) into `tenantBucket`, at most 4 copies at once.
 * @throws {@link CopySourceGoneError} when a copy failed and its source object is no longer there
 *   (or no longer whole); ScenecacheError `storage_error` for other S3 failures.
 */
export async function copyToTenant(
  store: ObjectStore,
  globalBucket: string,
  tenantBucket: string,
  bands: ReadonlyMap<string, CachedBand>,
  /** Called after each band is in place (copied or skipped), e.g. a failpoint. */
  onCopied: (bandId: string) => Promise<void> = () => Promise.resolve(),
): Promise<TenantCopy> {
  await store.ensureBucket(tenantBucket);
  const limit = pLimit(4);
  const keys: Record<string, string> = {};
  const objects: Record<string, string> = {};
  let bytesCopied = 0;
  await Promise.all(
    [...bands].map(([bandId, entry]) =>
      limit(async () => {
        const there = await store.headObject(tenantBucket, entry.key);
        const same = there && there.size === entry.size && there.metadata[SHA3_METADATA_KEY] === entry.sha3_256;
        if (!same) {
          try {
            await store.copyObject({ sourceBucket: globalBucket, sourceKey: entry.key, bucket: tenantBucket, key: entry.key, size: entry.size });
          } catch (err) {
            if (!(err instanceof StorageError)) throw err;
            const source = await store.headObject(globalBucket, entry.key);
            if (!source || source.size !== entry.size) throw new CopySourceGoneError(bandId, entry.key, err);
            throw err;
          }
          bytesCopied += entry.size;
        }
        keys[bandId] = entry.key;
        objects[bandId] = `s3://${tenantBucket}/${entry.key}`;
        await onCopied(bandId);
      }),
    ),
  );
  return { keys, objects, bytesCopied };
}
