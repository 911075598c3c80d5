/**
 * The one error type of @scenecache/storage: an S3 request that failed, with where it went.
 *
 * S3 failures are retryable by default: the pipeline re-verifies the cache on the next attempt
 * (a missing source object is re-downloaded), and network errors or 5xx answers are transient.
 */
import { ScenecacheError } from '@scenecache/core';

/** An S3 operation on `s3://bucket/key` failed. `code` is always `storage_error`. */
export class StorageError extends ScenecacheError {
  /** The S3 operation, e.g. `CopyObject`, `UploadPartCopy`, `CreateBucket`. */
  readonly operation: string;
  readonly bucket: string;
  readonly key: string | undefined;
  /** S3's error code (`NoSuchKey`, `SlowDown`, …) or the network error's code (`ECONNREFUSED`). */
  readonly s3Code: string | undefined;
  /** HTTP status S3 answered with; undefined when no answer came. */
  readonly s3Status: number | undefined;

  /**
   * @param cause - the SDK or network error (undefined when `message` explains the failure).
   * @param options.message - replaces the cause's description; `context` is added after the target.
   */
  constructor(
    operation: string,
    target: { bucket: string; key?: string },
    cause: unknown,
    options: { message?: string; context?: string; retryable?: boolean } = {},
  ) {
    const { code, status, detail } = describeS3Failure(cause);
    const where = target.key === undefined ? `s3://${target.bucket}` : `s3://${target.bucket}/${target.key}`;
    const context = options.context === undefined ? '' : ` (${options.context})`;
    const why = options.message ?? `${code ?? 'error'}${status === undefined ? '' : ` (HTTP ${status})`}: ${detail}`;
    super('storage_error', `S3 ${operation} ${where}${context} failed: ${why}`, {
      retryable: options.retryable ?? true,
      httpStatus: 503,
      cause,
    });
    this.operation = operation;
    this.bucket = target.bucket;
    this.key = target.key;
    this.s3Code = code;
    this.s3Status = status;
  }
}

/** The S3 error code, HTTP status and message of an AWS SDK (or network) error. */
export function describeS3Failure(err: unknown): { code: string | undefined; status: number | undefined; detail: string } {
  if (!(err instanceof Error)) return { code: undefined, status: undefined, detail: String(err) };
  const e = err as Error & { Code?: unknown; code?: unknown; $metadata?: { httpStatusCode?: number } };
  const code = typeof e.Code === 'string' ? e.Code : typeof e.code === 'string' ? e.code : e.name !== 'Error' ? e.name : undefined;
  return { code, status: e.$metadata?.httpStatusCode, detail: e.message || e.name };
}

/** Whether an SDK error means "no such object/bucket" (HEAD answers a bodiless 404 `NotFound`). */
export function isS3NotFound(err: unknown): boolean {
  const { code, status } = describeS3Failure(err);
  return status === 404 || code === 'NotFound' || code === 'NoSuchKey' || code === 'NoSuchBucket';
}
