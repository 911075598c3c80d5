/**
 * Presigned GET URLs: an HTTPS (or the endpoint's `http://`) URL that lets whoever holds it read one
 * object until it expires, without credentials — SigV4 query-string authentication, computed
 * locally from the client's credentials (no request to S3).
 *
 * The URL names the client's endpoint: with `S3_ENDPOINT` set to an in-cluster address, the URLs
 * point there too, so give the API an endpoint its STAC clients can reach.
 * docs.aws.amazon.com/AmazonS3/latest/userguide/ShareObjectPreSignedURL.html,
 * docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { StorageError } from './storage-error.js';

/** Longest lifetime SigV4 query signing allows (7 days), seconds. */
export const PRESIGNED_URL_MAX_SECONDS = 604_800;

/**
 * A presigned `GET` URL of `s3://bucket/key`, valid for `expiresInSeconds` from now. The object is
 * not checked: a URL of a missing object answers 404 `NoSuchKey` when used.
 *
 * @param expiresInSeconds - 1 to {@link PRESIGNED_URL_MAX_SECONDS}.
 * @throws RangeError for a lifetime outside 1–604800 s; {@link StorageError} (`PresignGetObject`)
 *   when the client cannot sign (no credentials, no region).
 */
export async function presignGetObject(client: S3Client, bucket: string, key: string, expiresInSeconds: number): Promise<string> {
  if (!Number.isInteger(expiresInSeconds) || expiresInSeconds < 1 || expiresInSeconds > PRESIGNED_URL_MAX_SECONDS) {
    throw new RangeError(`expiresInSeconds must be an integer in 1–${PRESIGNED_URL_MAX_SECONDS}, got ${expiresInSeconds}`);
  }
  try {
    return await getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: key }), { expiresIn: expiresInSeconds });
  } catch (err) {
    throw new StorageError('PresignGetObject', { bucket, key }, err);
  }
}
