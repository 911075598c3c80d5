/**
 * Resuming a cut download: the `Content-Range` a 206 answer must carry, and the error that asks the
 * caller to restart a file when the server cannot resume it.
 *
 * CDSE does not document Range support (documentation.dataspace.copernicus.eu/APIs/OData.html
 * #product-download): we send `Range: bytes=<received>-` after a cut and accept only a 206 whose
 * `Content-Range` starts at `<received>` (RFC 9110 §14.4, §15.3.7); a 200 means "no range support".
 */
import { UpstreamError } from '@scenecache/core';

/**
 * The server cannot continue a cut file where it stopped (it ignored `Range` and answered 200, or
 * answered another range): the caller must restart the file from byte 0 (abort its multipart
 * upload, open a new stream). Code `upstream_unavailable`, retryable, `restartRequired: true`.
 */
export class RestartRequiredError extends UpstreamError {
  readonly restartRequired = true as const;
  /** Bytes already streamed before the restart became necessary. */
  readonly bytesReceived: number;

  constructor(message: string, bytesReceived: number, status?: number) {
    super('upstream_unavailable', message, { retryable: true, httpStatus: 503, ...(status === undefined ? {} : { status }) });
    this.bytesReceived = bytesReceived;
  }
}

/** Whether an error asks the caller to restart the file from byte 0 ({@link RestartRequiredError}). */
export function isRestartRequired(err: unknown): err is RestartRequiredError {
  return err instanceof RestartRequiredError;
}

/** A parsed `Content-Range: bytes <start>-<end>/<total|*>` (RFC 9110 §14.4); `total` undefined for `*`. */
export interface ContentRange {
  readonly start: number;
  readonly end: number;
  readonly total: number | undefined;
}

/** Parse a `Content-Range` header; `undefined` when absent or malformed. */
export function parseContentRange(value: string | null | undefined): ContentRange | undefined {
  const m = value ? /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(value) : null;
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) return undefined;
  return { start, end, total: m[3] === '*' ? undefined : Number(m[3]) };
}
