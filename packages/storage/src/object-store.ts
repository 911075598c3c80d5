/**
 * ObjectStore: the S3 operations scenecache needs — buckets, HEAD, server-side copy, streaming
 * multipart upload — with S3 failures turned into {@link StorageError}.
 */
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type BucketLocationConstraint,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { Logger } from '@scenecache/core';
import { copyObject, type CopyObjectInput, type CopyOptions } from './object-copy.js';
import { presignGetObject } from './presigned-url.js';
import { describeS3Failure, isS3NotFound, StorageError } from './storage-error.js';
import { unquoteEtag, uploadStream, type UploadedObject, type UploadStreamInput } from './stream-upload.js';

/** What {@link ObjectStore.headObject} reports about an object. */
export interface ObjectHead {
  /** Bytes. */
  size: number;
  /** ETag without quotes (not a content hash for multipart objects). */
  etag: string;
  /** User metadata (`x-amz-meta-*`), keys lower-case. */
  metadata: Record<string, string>;
  contentType: string | undefined;
  lastModified: Date | undefined;
}

/** One object of a listing ({@link ObjectStore.listObjectPages}). */
export interface ListedObject {
  key: string;
  /** Bytes. */
  size: number;
  lastModified: Date | undefined;
}

/** An incomplete multipart upload ({@link ObjectStore.listMultipartUploads}). */
export interface IncompleteUpload {
  key: string;
  uploadId: string;
  initiated: Date | undefined;
}

/** The objects of a listing answer (V1 or V2). */
function toListed(contents: ReadonlyArray<{ Key?: string | undefined; Size?: number | undefined; LastModified?: Date | undefined }> | undefined): ListedObject[] {
  return (contents ?? []).flatMap((o) => (o.Key === undefined ? [] : [{ key: o.Key, size: o.Size ?? 0, lastModified: o.LastModified }]));
}

/** Keys one DeleteObjects request may name (S3's limit). docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html */
export const DELETE_OBJECTS_MAX_KEYS = 1000;

/** Options of {@link ObjectStore}. */
export interface ObjectStoreOptions extends Omit<CopyOptions, 'logger'> {
  /** Receives warnings (e.g. an AbortMultipartUpload that failed). */
  logger?: Logger;
  /** Default part size of {@link ObjectStore.uploadStream} (bytes, ≥ 5 MiB). @defaultValue 8 MiB */
  uploadPartSizeBytes?: number;
  /** Default parts in flight of {@link ObjectStore.uploadStream}. @defaultValue 4 */
  uploadQueueSize?: number;
}

/**
 * S3 operations over one client. Bucket existence is cached per instance, so share one store per
 * process. Every method throws {@link StorageError} (code `storage_error`, retryable) when S3 fails.
 */
export class ObjectStore {
  readonly client: S3Client;
  private readonly options: ObjectStoreOptions;
  /** A V2 listing page failed with InternalError once: list with V1 from then on (see {@link listObjectPages}). */
  private listWithV1 = false;
  /** Buckets known to exist, or being checked/created right now (concurrent callers share the promise). */
  private readonly buckets = new Map<string, Promise<void>>();

  constructor(client: S3Client, options: ObjectStoreOptions = {}) {
    this.client = client;
    this.options = { ...options };
  }

  /**
   * Make sure `bucket` exists: HeadBucket, then CreateBucket when missing (outside us-east-1 with
   * the client's region as LocationConstraint). Safe when other processes create the same bucket
   * at once: `BucketAlreadyOwnedByYou`, and `BucketAlreadyExists` for a bucket we can reach
   * (s3rver's answer for its own buckets), count as success; AWS's `OperationAborted` (a
   * conflicting create in progress) is retried. Remembered once it succeeded.
   * docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html,
   * docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
   *
   * @throws {@link StorageError}: `InvalidBucketName`, a name owned by another account
   *   (`BucketAlreadyExists`, not retryable), access denied, S3 unreachable.
   */
  async ensureBucket(bucket: string): Promise<void> {
    let known = this.buckets.get(bucket);
    if (known === undefined) {
      known = this.createBucketIfMissing(bucket);
      this.buckets.set(bucket, known);
      // A failure is not remembered: the next call tries again.
      void known.catch(() => this.buckets.delete(bucket));
    }
    return known;
  }

  /**
   * Size, ETag and metadata of `s3://bucket/key`, or undefined when there is no such object (or
   * bucket). docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html
   * @throws {@link StorageError} for anything but 404.
   */
  async headObject(bucket: string, key: string): Promise<ObjectHead | undefined> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return {
        size: out.ContentLength ?? 0,
        etag: unquoteEtag(out.ETag),
        metadata: { ...out.Metadata },
        contentType: out.ContentType,
        lastModified: out.LastModified,
      };
    } catch (err) {
      if (isS3NotFound(err)) return undefined;
      throw new StorageError('HeadObject', { bucket, key }, err);
    }
  }

  /**
   * Server-side copy with the source's metadata: CopyObject, or UploadPartCopy in parts of
   * `copyPartSizeBytes` when `size` exceeds `multipartCopyThresholdBytes` (5 GiB, S3's CopyObject
   * limit). See {@link copyObject}. The destination bucket must exist ({@link ensureBucket}).
   * @returns the copy's ETag, without quotes.
   * @throws {@link StorageError}; a failed multipart copy is aborted first.
   */
  async copyObject(input: CopyObjectInput): Promise<{ etag: string }> {
    return copyObject(this.client, input, { ...this.options });
  }

  /**
   * Stream `body` into `s3://bucket/key` by multipart upload: memory ≈ `partSizeBytes ×
   * (queueSize + 2)` whatever the size; the object appears whole or not at all. See
   * {@link uploadStream} for the failure contract.
   * @throws the body's error, `signal.reason`, or {@link StorageError}.
   */
  async uploadStream(input: UploadStreamInput): Promise<UploadedObject> {
    return uploadStream(
      this.client,
      {
        ...input,
        partSizeBytes: input.partSizeBytes ?? this.options.uploadPartSizeBytes,
        queueSize: input.queueSize ?? this.options.uploadQueueSize,
      },
      this.options.logger,
    );
  }

  /**
   * Delete `s3://bucket/key`; deleting a missing key succeeds (S3 answers 204 either way).
   * @throws {@link StorageError}.
   */
  async deleteObject(bucket: string, key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    } catch (err) {
      throw new StorageError('DeleteObject', { bucket, key }, err);
    }
  }

  /**
   * Delete many keys of `bucket` with DeleteObjects, {@link DELETE_OBJECTS_MAX_KEYS} per request
   * (quiet mode: S3 reports only failures; a missing key counts as deleted).
   * docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html
   *
   * @returns how many keys were sent and deleted (all of them, or it throws).
   * @throws {@link StorageError} when a request fails or S3 reports a key it could not delete
   *   (the keys of earlier requests stay deleted).
   */
  async deleteObjects(bucket: string, keys: readonly string[]): Promise<number> {
    let deleted = 0;
    for (let i = 0; i < keys.length; i += DELETE_OBJECTS_MAX_KEYS) {
      const batch = keys.slice(i, i + DELETE_OBJECTS_MAX_KEYS);
      let out;
      try {
        out = await this.client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }));
      } catch (err) {
        throw new StorageError('DeleteObjects', { bucket }, err);
      }
      const failed = out.Errors ?? [];
      if (failed.length > 0) {
        const first = failed[0]!;
        throw new StorageError('DeleteObjects', { bucket, ...(first.Key === undefined ? {} : { key: first.Key }) }, undefined, {
          message: `${failed.length} of ${batch.length} keys not deleted (first: ${first.Code ?? 'error'}: ${first.Message ?? ''})`,
        });
      }
      deleted += batch.length;
    }
    return deleted;
  }

  /**
   * The objects of `bucket` under `prefix`, one page (≤ 1000) at a time, in S3's (UTF-8 binary) key
   * order, so the keys under one prefix come one after another. Pages with ListObjectsV2; when a
   * V2 page fails with `InternalError` after the SDK's retries, the listing goes on with ListObjects
   * (V1, `Marker` = the last key seen), which every S3 implements too: s3rver 3.7.1 on OpenSSL 3
   * cannot make V2 continuation tokens (it ciphers them with DES, which OpenSSL 3 only has in its
   * legacy provider), so every truncated V2 answer of it is a 500. The switch is remembered by
   * this store: later listings start with V1.
   * docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html, …/API_ListObjects.html
   * @throws {@link StorageError}.
   */
  async *listObjectPages(bucket: string, prefix?: string): AsyncGenerator<ListedObject[]> {
    let token: string | undefined;
    let lastKey: string | undefined;
    let v1 = this.listWithV1;
    for (;;) {
      let page: ListedObject[];
      let more: boolean;
      try {
        if (v1) {
          const out = await this.client.send(
            new ListObjectsCommand({ Bucket: bucket, ...(prefix === undefined ? {} : { Prefix: prefix }), ...(lastKey === undefined ? {} : { Marker: lastKey }) }),
          );
          page = toListed(out.Contents);
          more = out.IsTruncated === true && page.length > 0;
        } else {
          const out = await this.client.send(
            new ListObjectsV2Command({
              Bucket: bucket,
              ...(prefix === undefined ? {} : { Prefix: prefix }),
              ...(token === undefined ? {} : { ContinuationToken: token }),
            }),
          );
          page = toListed(out.Contents);
          token = out.IsTruncated === true ? out.NextContinuationToken : undefined;
          more = token !== undefined;
        }
      } catch (err) {
        if (!v1 && describeS3Failure(err).code === 'InternalError') {
          v1 = true;
          this.listWithV1 = true;
          this.options.logger?.warn({ bucket }, 'ListObjectsV2 paging failed with InternalError: listing with ListObjects (V1) from now on');
          continue;
        }
        throw new StorageError(v1 ? 'ListObjects' : 'ListObjectsV2', { bucket }, err);
      }
      if (page.length > 0) {
        lastKey = page[page.length - 1]!.key;
        yield page;
      }
      if (!more) return;
    }
  }

  /**
   * Incomplete multipart uploads in `bucket` under `prefix` (every page of
   * ListMultipartUploads), or `undefined` when the store does not implement the operation
   * (s3rver 3.7.1 answers 501 NotImplemented): rely on the bucket's
   * `AbortIncompleteMultipartUpload` lifecycle rule there.
   * docs.aws.amazon.com/AmazonS3/latest/API/API_ListMultipartUploads.html
   * @throws {@link StorageError} for any other failure.
   */
  async listMultipartUploads(bucket: string, prefix?: string): Promise<IncompleteUpload[] | undefined> {
    const uploads: IncompleteUpload[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    try {
      for (;;) {
        const out = await this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: bucket,
            ...(prefix === undefined ? {} : { Prefix: prefix }),
            ...(keyMarker === undefined ? {} : { KeyMarker: keyMarker }),
            ...(uploadIdMarker === undefined ? {} : { UploadIdMarker: uploadIdMarker }),
          }),
        );
        for (const u of out.Uploads ?? []) if (u.Key !== undefined && u.UploadId !== undefined) uploads.push({ key: u.Key, uploadId: u.UploadId, initiated: u.Initiated });
        if (out.IsTruncated !== true) return uploads;
        keyMarker = out.NextKeyMarker;
        uploadIdMarker = out.NextUploadIdMarker;
      }
    } catch (err) {
      const { code, status } = describeS3Failure(err);
      if (code === 'NotImplemented' || status === 501) return undefined;
      throw new StorageError('ListMultipartUploads', { bucket }, err);
    }
  }

  /**
   * Abort one multipart upload (its parts are freed); an upload already gone (`NoSuchUpload`)
   * counts as aborted. docs.aws.amazon.com/AmazonS3/latest/API/API_AbortMultipartUpload.html
   * @throws {@link StorageError}.
   */
  async abortMultipartUpload(bucket: string, key: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }));
    } catch (err) {
      if (describeS3Failure(err).code === 'NoSuchUpload') return;
      throw new StorageError('AbortMultipartUpload', { bucket, key }, err);
    }
  }

  /**
   * The bytes of `s3://bucket/key` as a Node stream (for verification and the demo; the worker
   * never reads objects back). Destroy it if you stop early, to free the connection.
   * @throws {@link StorageError} (`NoSuchKey` for a missing object).
   */
  async getObjectStream(bucket: string, key: string): Promise<Readable> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      // In Node the SDK's body is an http.IncomingMessage, a Readable.
      return out.Body as Readable;
    } catch (err) {
      throw new StorageError('GetObject', { bucket, key }, err);
    }
  }

  /**
   * A presigned GET URL of `s3://bucket/key`, valid for `expiresInSeconds` (1–604800): see
   * {@link presignGetObject}. Computed locally, no request to S3.
   * @throws RangeError for a lifetime out of range; {@link StorageError} when the client cannot sign.
   */
  async presignGetObject(bucket: string, key: string, expiresInSeconds: number): Promise<string> {
    return presignGetObject(this.client, bucket, key, expiresInSeconds);
  }

  /**
   * Every key in `bucket` starting with `prefix`, in S3's (UTF-8 binary) order, following
   * ListObjectsV2 continuation tokens. docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html
   * @throws {@link StorageError}.
   */
  async listKeys(bucket: string, prefix?: string): Promise<string[]> {
    const keys: string[] = [];
    for await (const page of this.listObjectPages(bucket, prefix)) for (const object of page) keys.push(object.key);
    return keys;
  }

  private async createBucketIfMissing(bucket: string): Promise<void> {
    if (await this.bucketExists(bucket)) return;
    const region = await this.client.config.region();
    for (let attempt = 1; ; attempt++) {
      try {
        await this.client.send(
          new CreateBucketCommand({
            Bucket: bucket,
            // us-east-1 is the default location and must not be named.
            ...(region === 'us-east-1' ? {} : { CreateBucketConfiguration: { LocationConstraint: region as BucketLocationConstraint } }),
          }),
        );
        this.options.logger?.info({ bucket }, 'created bucket');
        return;
      } catch (err) {
        const { code } = describeS3Failure(err);
        if (code === 'BucketAlreadyOwnedByYou') return;
        if (code === 'BucketAlreadyExists') {
          // AWS answers HeadBucket on another account's bucket with 403.
          if (await this.bucketExists(bucket).catch(() => false)) return;
          throw new StorageError('CreateBucket', { bucket }, err, { context: 'the name belongs to another account', retryable: false });
        }
        if (code === 'OperationAborted' && attempt < 5) {
          await sleep(100 * attempt);
          if (await this.bucketExists(bucket)) return;
          continue;
        }
        throw new StorageError('CreateBucket', { bucket }, err);
      }
    }
  }

  /** HeadBucket: true when it exists and we may use it, false on 404. */
  private async bucketExists(bucket: string): Promise<boolean> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: bucket }));
      return true;
    } catch (err) {
      if (isS3NotFound(err)) return false;
      throw new StorageError('HeadBucket', { bucket }, err);
    }
  }
}
