/**
 * Streaming multipart upload: a body of any size goes to S3 in parts, with bounded memory, and the
 * object appears whole or not at all.
 *
 * Built on @aws-sdk/lib-storage's `Upload`, with two changes to how it fails:
 * - Cancelling (`signal`) destroys the body instead of calling `upload.abort()`. `abort()` makes
 *   `done()` reject at once while part uploads and the AbortMultipartUpload still run in the
 *   background; failing the body lets every in-flight part settle first, so by the time
 *   {@link uploadStream} rejects, nothing of this upload is still being written.
 * - We abort the multipart upload ourselves (`leavePartsOnError: true` tells lib-storage not to),
 *   so a failing AbortMultipartUpload (s3rver 3.7.1 answers 405) is logged and never replaces the
 *   error that caused the failure.
 * docs.aws.amazon.com/AmazonS3/latest/userguide/mpuoverview.html
 */
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { AbortMultipartUploadCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { Logger } from '@scenecache/core';
import { describeS3Failure, StorageError } from './storage-error.js';

/** S3's smallest part (all but the last); docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html */
export const MIN_PART_SIZE_BYTES = 5 * 1024 * 1024;
/** S3's largest part count per multipart upload (same page). */
export const MAX_PARTS = 10_000;
/** Default part size of {@link uploadStream}: 8 MiB, so a 130 MB band is 16 parts. */
export const DEFAULT_UPLOAD_PART_SIZE_BYTES = 8 * 1024 * 1024;
/** Default number of parts {@link uploadStream} sends at once. */
export const DEFAULT_UPLOAD_QUEUE_SIZE = 4;

/** Input of {@link uploadStream}. */
export interface UploadStreamInput {
  bucket: string;
  key: string;
  /** The object's bytes. Destroyed when the upload fails or is cancelled. */
  body: Readable;
  /**
   * Expected size (bytes). When set, a body of any other length fails the upload (nothing is
   * stored), and the part size grows if needed to stay within 10,000 parts.
   */
  contentLength?: number;
  /** User metadata (`x-amz-meta-*`). S3 lower-cases the keys; values must be US-ASCII. */
  metadata?: Record<string, string>;
  contentType?: string;
  /**
   * Cancels the upload: the body is destroyed, the multipart upload aborted, and the promise
   * rejects with `signal.reason` (an AbortError unless `abort(reason)` was given an Error).
   */
  signal?: AbortSignal;
  /** Bytes per part, at least 5 MiB. @defaultValue 8 MiB ({@link DEFAULT_UPLOAD_PART_SIZE_BYTES}) */
  partSizeBytes?: number;
  /** Parts uploaded at once. @defaultValue 4 ({@link DEFAULT_UPLOAD_QUEUE_SIZE}) */
  queueSize?: number;
}

/** What {@link uploadStream} stored. */
export interface UploadedObject {
  /** ETag without quotes. A multipart ETag (`…-N`) is not a content hash: never compare it with one. */
  etag: string;
  /** Bytes stored. */
  size: number;
}

/**
 * Upload `body` to `s3://bucket/key` by multipart upload (a single PutObject when the body fits
 * in one part).
 *
 * Memory is bounded by the part size, not the body size: the parts in flight, the one being
 * filled and lib-storage's copy while it cuts parts — about `partSizeBytes × (queueSize + 2)`,
 * 48 MiB with the defaults (measured live: 67 MB; 300 MB and 900 MB bodies alike). RSS runs
 * higher until the GC reclaims finished parts (V8 collects when external memory has grown by
 * ~64 MB): measured +110–170 MB with the defaults, +95 MB with 5 MiB × 2.
 *
 * Objects appear whole or not at all: on any failure (the body errors, e.g. a Transform that
 * verifies a hash in `flush`; `signal` fires; S3 fails) the multipart upload is aborted before the
 * promise rejects. A `signal` that fires once the whole body has been read may come too late to
 * stop CompleteMultipartUpload: the upload then resolves with the whole object.
 *
 * @throws the body's own error when the body failed, `signal.reason` when cancelled,
 *   {@link StorageError} (retryable) when S3 failed or the body's length differs from `contentLength`,
 *   RangeError for a part size under 5 MiB or a queue size under 1.
 */
export async function uploadStream(client: S3Client, input: UploadStreamInput, logger?: Logger): Promise<UploadedObject> {
  const { bucket, key, body, signal, contentLength } = input;
  if (signal?.aborted) {
    body.destroy();
    throw abortError(signal);
  }
  let partSize = input.partSizeBytes ?? DEFAULT_UPLOAD_PART_SIZE_BYTES;
  const queueSize = input.queueSize ?? DEFAULT_UPLOAD_QUEUE_SIZE;
  if (!(partSize >= MIN_PART_SIZE_BYTES) || !(Number.isInteger(queueSize) && queueSize >= 1)) {
    body.destroy();
    throw new RangeError(`partSizeBytes must be ≥ ${MIN_PART_SIZE_BYTES} (S3's minimum part) and queueSize ≥ 1, got ${partSize} and ${queueSize}`);
  }
  if (contentLength !== undefined) partSize = Math.max(partSize, Math.ceil(contentLength / MAX_PARTS));

  // Counts the bytes and, when the length is known, fails the stream before its end on a
  // mismatch, so lib-storage never sends the last part.
  let size = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      size += chunk.length;
      callback(null, chunk);
    },
    flush(callback: TransformCallback) {
      if (contentLength !== undefined && size !== contentLength) {
        callback(new StorageError('Upload', { bucket, key }, undefined, {
          message: `the body was ${size} bytes, expected ${contentLength}`,
        }));
      } else {
        callback();
      }
    },
  });
  // The body's own error, by identity: lib-storage rethrows exactly what the stream failed with.
  let bodyError: unknown;
  body.on('error', (err) => {
    bodyError ??= err;
    counted.destroy(err);
  });
  body.pipe(counted);
  let abortedWith: Error | undefined;
  const onAbort = (): void => {
    abortedWith = abortError(signal);
    counted.destroy(abortedWith);
  };
  signal?.addEventListener('abort', onAbort, { once: true });

  const upload = new Upload({
    client,
    params: {
      Bucket: bucket,
      Key: key,
      Body: counted,
      ...(input.metadata === undefined ? {} : { Metadata: input.metadata }),
      ...(input.contentType === undefined ? {} : { ContentType: input.contentType }),
    },
    partSize,
    queueSize,
    leavePartsOnError: true,
  });
  try {
    const result = await upload.done();
    return { etag: unquoteEtag(result.ETag), size };
  } catch (err) {
    await abortMultipartUpload(client, bucket, key, upload.uploadId, logger);
    if (abortedWith !== undefined && err === abortedWith) throw err;
    if (bodyError !== undefined && err === bodyError) throw err;
    if (err instanceof StorageError) throw err;
    throw new StorageError(upload.uploadId === undefined ? 'PutObject' : 'MultipartUpload', { bucket, key }, err);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    body.unpipe(counted);
    // No-ops after success; after a failure they stop the upstream (e.g. an HTTP download).
    counted.destroy();
    body.destroy();
  }
}

/**
 * Abort a multipart upload so its parts are discarded. Never throws: a failure is logged, since
 * the caller is already failing with a better error. `NoSuchUpload` means it is gone already;
 * s3rver 3.7.1 answers every AbortMultipartUpload with 405 MethodNotAllowed.
 * docs.aws.amazon.com/AmazonS3/latest/API/API_AbortMultipartUpload.html
 */
export async function abortMultipartUpload(
  client: S3Client,
  bucket: string,
  key: string,
  uploadId: string | undefined,
  logger?: Logger,
): Promise<void> {
  if (uploadId === undefined) return;
  try {
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }));
  } catch (err) {
    const { code, status } = describeS3Failure(err);
    if (code === 'NoSuchUpload') return;
    const unsupported = status === 405 || status === 501;
    logger?.[unsupported ? 'debug' : 'warn'](
      { err, bucket, key, uploadId },
      unsupported
        ? 'the S3 server does not support AbortMultipartUpload; its parts stay until cleaned up'
        : 'AbortMultipartUpload failed; the parts stay until the bucket lifecycle rule removes them',
    );
  }
}

/** An ETag without its surrounding double quotes (S3 sends `"…"`). */
export function unquoteEtag(etag: string | undefined): string {
  return (etag ?? '').replace(/^"(.*)"$/, '$1');
}

/**
 * `signal.reason` when it is error-like (by default an AbortError DOMException), else an
 * AbortError carrying it. Duck-typed: DOMException and errors from other realms (vm contexts, as
 * under jest) fail `instanceof Error`.
 */
function abortError(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  if (reason instanceof Error) return reason;
  if (typeof reason === 'object' && reason !== null && typeof (reason as Error).message === 'string' && typeof (reason as Error).name === 'string') {
    return reason as Error;
  }
  return Object.assign(new Error('upload aborted', { cause: reason }), { name: 'AbortError' });
}
