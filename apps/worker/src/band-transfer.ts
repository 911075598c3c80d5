/**
 * Step 4 for one file: stream a band file from CDSE into the global bucket. The CDSE stream hashes
 * on the way and errors before its end when the size or SHA3-256 differs from the manifest, so the
 * multipart upload fails and is aborted: an object appears whole and verified, or not at all. The
 * object carries the global cache's metadata (`sha3-256`, `upload-id`, `job-id`, see
 * @scenecache/global-cache), which lets a later run adopt it if it is not registered.
 */
import type { Logger, SafeFile } from '@scenecache/core';
import { isRestartRequired, type CdseClient } from '@scenecache/copernicus';
import type { ObjectStore } from '@scenecache/storage';

/** Inputs of {@link transferBand}. */
export interface TransferBandInput {
  cdse: CdseClient;
  store: ObjectStore;
  productId: string;
  safeName: string;
  file: SafeFile;
  bucket: string;
  key: string;
  /** Object metadata (the global cache's `bandObjectMetadata`). */
  metadata: Record<string, string>;
  /** Aborts the download and the upload (job cancelled, lock lost). */
  signal: AbortSignal;
  logger: Logger;
  /** Whole-file restarts when the server cannot resume (no 206). @defaultValue 3 */
  maxRestarts?: number;
  /**
   * Called once, when every byte of the file has come from upstream and matched the manifest
   * (before the upload's last part and completion): the upstream connection is done with.
   */
  onUpstreamDone?: () => void;
}

/**
 * Put a verified copy of `file` at `bucket/key`.
 * @returns the object's ETag.
 * @throws UpstreamError (`upstream_integrity`, `upstream_unavailable`, `upstream_auth`, …) or
 *   ScenecacheError `storage_error`; nothing is left at `key` unless it is whole and verified.
 */
export async function transferBand(input: TransferBandInput): Promise<string> {
  const { cdse, store, file, bucket, key, signal, logger } = input;
  const maxRestarts = input.maxRestarts ?? 3;
  for (let attempt = 1; ; attempt++) {
    signal.throwIfAborted();
    const body = cdse.openBandFile({ productId: input.productId, safeName: input.safeName, file, signal });
    if (input.onUpstreamDone) void body.result.then(input.onUpstreamDone, () => undefined);
    try {
      const { etag } = await store.uploadStream({ bucket, key, body, contentLength: file.size, metadata: input.metadata, signal });
      return etag;
    } catch (err) {
      body.destroy();
      if (!isRestartRequired(err) || attempt > maxRestarts || signal.aborted) throw err;
      logger.warn({ err, key, attempt }, 'upstream cannot resume; restarting the file');
    }
  }
}
