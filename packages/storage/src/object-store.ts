/**
 * ObjectStore: the S3 operations scenecache needs — buckets, HEAD, server-side copy, streaming
 * multipart upload — with S3 failures turned into {@link StorageError}.
 */
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type BucketLocationConstraint,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { Logger } from '@scenecache/core';
import { copyObject, type CopyObjectInput, type CopyOptions } from './object-copy.js';
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
   * Every key in `bucket` starting with `prefix`, in S3's (UTF-8 binary) order, following
   * ListObjectsV2 continuation tokens. docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html
   * @throws {@link StorageError}.
   */
  async listKeys(bucket: string, prefix?: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    try {
      do {
        const out = await this.client.send(
          new ListObjectsV2Command({
            Bucket: bucket,
            ...(prefix === undefined ? {} : { Prefix: prefix }),
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
        );
        for (const object of out.Contents ?? []) if (object.Key !== undefined) keys.push(object.Key);
        token = out.IsTruncated === true ? out.NextContinuationToken : undefined;
      } while (token !== undefined);
    } catch (err) {
      throw new StorageError('ListObjectsV2', { bucket }, err);
    }
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
