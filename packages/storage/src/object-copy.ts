/**
 * Server-side copy: CopyObject up to S3's 5 GiB limit, a multipart copy (UploadPartCopy) above it.
 * No byte passes through this process either way.
 * docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html,
 * docs.aws.amazon.com/AmazonS3/latest/API/API_UploadPartCopy.html
 */
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  UploadPartCopyCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { Logger } from '@scenecache/core';
import { encodeCopySource } from './copy-source.js';
import { isS3NotFound, StorageError } from './storage-error.js';
import { abortMultipartUpload, MAX_PARTS, unquoteEtag } from './stream-upload.js';

/** S3's CopyObject limit, 5 GiB; bigger objects must be copied part by part. */
export const MAX_COPY_OBJECT_BYTES = 5 * 1024 ** 3;
/** Default part size of a multipart copy: 512 MiB (a 5 TiB object would need 525 MiB: it grows to stay within 10,000 parts). */
export const DEFAULT_COPY_PART_SIZE_BYTES = 512 * 1024 ** 2;
/** Default number of UploadPartCopy requests in flight per copy. */
export const DEFAULT_COPY_CONCURRENCY = 4;

/** Input of {@link copyObject}. */
export interface CopyObjectInput {
  sourceBucket: string;
  sourceKey: string;
  /** Destination bucket (must exist). */
  bucket: string;
  /** Destination key. */
  key: string;
  /** The source's size (bytes): picks CopyObject or a multipart copy. */
  size: number;
}

/** Tuning of {@link copyObject}. */
export interface CopyOptions {
  /** Objects larger than this (bytes) are copied with UploadPartCopy. @defaultValue 5 GiB ({@link MAX_COPY_OBJECT_BYTES}) */
  multipartCopyThresholdBytes?: number;
  /** Part size of a multipart copy (bytes, ≥ 5 MiB). @defaultValue 512 MiB */
  copyPartSizeBytes?: number;
  /** UploadPartCopy requests in flight at once. @defaultValue 4 */
  copyConcurrency?: number;
  logger?: Logger | undefined;
}

/**
 * Copy `s3://sourceBucket/sourceKey` to `s3://bucket/key` on the server, with its user metadata
 * and content type. The copy's ETag may differ from the source's (a multipart source copied by
 * CopyObject, or any multipart copy): compare sizes and our own hash metadata, not ETags.
 *
 * @returns the new object's ETag, without quotes.
 * @throws {@link StorageError} (retryable) when S3 fails, e.g. `NoSuchKey`; a failed multipart
 *   copy is aborted first, so no partial object appears.
 */
export async function copyObject(client: S3Client, input: CopyObjectInput, options: CopyOptions = {}): Promise<{ etag: string }> {
  const threshold = options.multipartCopyThresholdBytes ?? MAX_COPY_OBJECT_BYTES;
  if (input.size > threshold) return multipartCopy(client, input, options);
  try {
    const out = await client.send(
      new CopyObjectCommand({
        CopySource: encodeCopySource(input.sourceBucket, input.sourceKey),
        Bucket: input.bucket,
        Key: input.key,
        MetadataDirective: 'COPY',
      }),
    );
    return { etag: unquoteEtag(out.CopyObjectResult?.ETag) };
  } catch (err) {
    throw new StorageError('CopyObject', { bucket: input.bucket, key: input.key }, err, {
      context: `from s3://${input.sourceBucket}/${input.sourceKey}`,
    });
  }
}

async function multipartCopy(client: S3Client, input: CopyObjectInput, options: CopyOptions): Promise<{ etag: string }> {
  const { sourceBucket, sourceKey, bucket, key } = input;
  const source = await client
    .send(new HeadObjectCommand({ Bucket: sourceBucket, Key: sourceKey }))
    .catch((err: unknown) => {
      throw new StorageError('HeadObject', { bucket: sourceBucket, key: sourceKey }, err, {
        ...(isS3NotFound(err) ? { message: 'the copy source does not exist' } : {}),
      });
    });
  const size = source.ContentLength ?? input.size;
  const partSize = Math.max(options.copyPartSizeBytes ?? DEFAULT_COPY_PART_SIZE_BYTES, Math.ceil(size / MAX_PARTS));
  // Unlike CopyObject, a multipart upload does not inherit the source's metadata: pass it on.
  const created = await client
    .send(
      new CreateMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        ...(source.Metadata === undefined ? {} : { Metadata: source.Metadata }),
        ...(source.ContentType === undefined ? {} : { ContentType: source.ContentType }),
      }),
    )
    .catch((err: unknown) => {
      throw new StorageError('CreateMultipartUpload', { bucket, key }, err);
    });
  const uploadId = created.UploadId;
  try {
    const copySource = encodeCopySource(sourceBucket, sourceKey);
    const ranges: { partNumber: number; first: number; last: number }[] = [];
    for (let first = 0, partNumber = 1; first < size; first += partSize, partNumber++) {
      ranges.push({ partNumber, first, last: Math.min(first + partSize, size) - 1 });
    }
    const parts: CompletedPart[] = [];
    // A few workers take ranges in order; each part is one server-side range copy.
    const copyParts = async (): Promise<void> => {
      for (let range = ranges.shift(); range !== undefined; range = ranges.shift()) {
        const command = new UploadPartCopyCommand({
          Bucket: bucket,
          Key: key,
          UploadId: uploadId,
          PartNumber: range.partNumber,
          CopySource: copySource,
          CopySourceRange: `bytes=${range.first}-${range.last}`,
          // The source must not change between parts.
          ...(source.ETag === undefined ? {} : { CopySourceIfMatch: source.ETag }),
        });
        const out = await client.send(command).catch((err: unknown) => {
          ranges.length = 0; // the copy is lost: the other workers stop after their current part
          throw err;
        });
        parts.push({ PartNumber: range.partNumber, ETag: out.CopyPartResult?.ETag });
      }
    };
    const concurrency = Math.max(1, options.copyConcurrency ?? DEFAULT_COPY_CONCURRENCY);
    const results = await Promise.allSettled(Array.from({ length: concurrency }, copyParts));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    parts.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
    const done = await client.send(
      new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts } }),
    );
    return { etag: unquoteEtag(done.ETag) };
  } catch (err) {
    await abortMultipartUpload(client, bucket, key, uploadId, options.logger);
    throw new StorageError('UploadPartCopy', { bucket, key }, err, { context: `multipart copy from s3://${sourceBucket}/${sourceKey}` });
  }
}
