/**
 * @scenecache/storage — S3 on @aws-sdk/client-s3: the client, buckets, HEAD, server-side copy
 * (UploadPartCopy over 5 GiB) and streaming multipart upload, plus the embedded s3rver used when
 * `S3_ENDPOINT` is unset.
 *
 * Glossary:
 * - part: one piece of a multipart upload or copy, 5 MiB to 5 GiB, at most 10,000 per object.
 * - ETag: S3's entity tag, returned without quotes; an MD5 only for single-part, unencrypted
 *   objects — never compare it with a content hash (we store SHA3-256 as `x-amz-meta-sha3-256`).
 * - embedded S3: s3rver in one local process, shared by the others through its port.
 */
export * from './storage-error.js';
export * from './s3-client.js';
export * from './copy-source.js';
export * from './stream-upload.js';
export * from './object-copy.js';
export * from './object-store.js';
export * from './presigned-url.js';
export * from './embedded-s3.js';
