/**
 * The `x-amz-copy-source` header of CopyObject and UploadPartCopy.
 *
 * S3 URL-decodes it, so each path segment is percent-encoded on its own: `/` stays a separator,
 * while `+` (which S3 would read as a space), `=`, spaces and non-ASCII characters are escaped.
 * Node's HTTP client also refuses header values with characters above U+00FF, so unencoded
 * Unicode keys would not even be sent.
 * docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html ("x-amz-copy-source").
 */

/** `bucket/key` with every `/`-separated segment encoded by `encodeURIComponent`. */
export function encodeCopySource(bucket: string, key: string): string {
  return `${bucket}/${key}`.split('/').map(encodeURIComponent).join('/');
}
