/**
 * Step 4: stream one band file from CDSE into the global bucket. The CDSE stream hashes on the way
 * and errors before its end when the size or SHA3-256 differs from the manifest, so the multipart
 * upload fails and is aborted: an object appears whole and verified, or not at all. The manifest's
 * SHA3-256 is stored as object metadata (`sha3-256`), which lets a retry adopt an object that was
 * uploaded whole by a worker killed before it could register it, without downloading it again.
 */
import type { Logger, SafeFile } from '@scenecache/core';
import { isRestartRequired, type CdseClient } from '@scenecache/copernicus';
import type { ObjectStore } from '@scenecache/storage';

/** Metadata key (x-amz-meta-sha3-256) holding the verified SHA3-256 of a global object. */
export const SHA3_METADATA_KEY = 'sha3-256';

/** What {@link transferBand} put in the bucket. */
export interface TransferredBand {
  etag: string;
  /** Bytes fetched from upstream for this band (0 when an existing object was adopted). */
  bytesDownloaded: number;
  adopted: boolean;
}

/** Inputs of {@link transferBand}. */
export interface TransferBandInput {
  cdse: CdseClient;
  store: ObjectStore;
  productId: string;
  safeName: string;
  file: SafeFile;
  bucket: string;
  key: string;
  /** Aborts the download and the upload (job cancelled, scene lock lost). */
  signal: AbortSignal;
  logger: Logger;
  /** Whole-file restarts when the server cannot resume (no 206). @defaultValue 3 */
  maxRestarts?: number;
  /** Adopt a verified object already at `key` (false: the scene was invalidated, its objects are not trusted). @defaultValue true */
  adoptExisting?: boolean;
}

/**
 * Put a verified copy of `file` at `bucket/key`, or adopt the one already there.
 * @throws UpstreamError (`upstream_integrity`, `upstream_unavailable`, `upstream_auth`, …) or
 *   ScenecacheError `storage_error`; nothing is left at `key` unless it is whole and verified.
 */
export async function transferBand(input: TransferBandInput): Promise<TransferredBand> {
  const { cdse, store, file, bucket, key, signal, logger } = input;
  const existing = input.adoptExisting === false ? undefined : await store.headObject(bucket, key);
  if (existing && existing.size === file.size && existing.metadata[SHA3_METADATA_KEY] === file.sha3_256) {
    logger.info({ key }, 'adopting a verified object left by an earlier attempt');
    return { etag: existing.etag, bytesDownloaded: 0, adopted: true };
  }
  const maxRestarts = input.maxRestarts ?? 3;
  for (let attempt = 1; ; attempt++) {
    signal.throwIfAborted();
    const body = cdse.openBandFile({ productId: input.productId, safeName: input.safeName, file, signal });
    try {
      const { etag } = await store.uploadStream({
        bucket,
        key,
        body,
        contentLength: file.size,
        metadata: { [SHA3_METADATA_KEY]: file.sha3_256 },
        signal,
      });
      return { etag, bytesDownloaded: file.size, adopted: false };
    } catch (err) {
      body.destroy();
      if (!isRestartRequired(err) || attempt > maxRestarts || signal.aborted) throw err;
      logger.warn({ err, key, attempt }, 'upstream cannot resume; restarting the file');
    }
  }
}
