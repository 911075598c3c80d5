/**
 * Step 6: fan-out. Each requested band is server-side copied from the global bucket into the
 * tenant's bucket under the same key (S3 CopyObject; UploadPartCopy over 5 GB — see ObjectStore).
 * An object already in the tenant bucket with the same size and SHA3-256 metadata is skipped:
 * ETags can't be compared because a copy of a multipart object gets a different ETag.
 */
import pLimit from 'p-limit';
import type { CachedBand } from '@scenecache/db';
import type { ObjectStore } from '@scenecache/storage';
import { SHA3_METADATA_KEY } from '@scenecache/global-cache';

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
 * @throws ScenecacheError `storage_error`.
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
          await store.copyObject({ sourceBucket: globalBucket, sourceKey: entry.key, bucket: tenantBucket, key: entry.key, size: entry.size });
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
