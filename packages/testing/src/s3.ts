/**
 * S3 for tests: the server named by `S3_ENDPOINT` (CI may point at MinIO), else an s3rver started
 * in-process on a free port with a fresh temporary directory. Each test makes its own buckets
 * ({@link testBucketName}), so test files run in parallel against one server.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { loadSettings } from '@scenecache/core';
import { createS3Client, ObjectStore, startEmbeddedS3, type ObjectStoreOptions, type S3Settings } from '@scenecache/storage';

/** A running test S3. */
export interface TestS3 {
  /** `http://host:port`. */
  endpoint: string;
  /** Whether the server is an s3rver started by {@link startTestS3} (else `S3_ENDPOINT`). */
  embedded: boolean;
  client: S3Client;
  store: ObjectStore;
  /** The S3 fields of `Settings`, `s3Endpoint` set: spread them into a test's settings. */
  settings: S3Settings & { s3Endpoint: string };
  /** The same as environment variables, for spawned workers and APIs (`S3_ENDPOINT`, `S3_REGION`, …). */
  env: Record<string, string>;
  /** A fresh valid bucket name (not created); {@link close} deletes it from an external server. */
  uniqueBucket(label: string): string;
  /** Destroy the client; stop the s3rver and remove its directory, or empty and delete this run's buckets from `S3_ENDPOINT`. */
  close(): Promise<void>;
}

/**
 * Start (or connect to) an S3 for one test file. Reads `S3_ENDPOINT`, `S3_REGION`,
 * `S3_ACCESS_KEY_ID`, `S3_SECRET_ACCESS_KEY` (and the other S3 settings) from the environment,
 * with the defaults of `loadSettings` (checksums `WHEN_REQUIRED` and path-style for non-AWS).
 *
 * @param storeOptions - options of the returned {@link ObjectStore} (e.g. a small copy threshold).
 */
export async function startTestS3(storeOptions: ObjectStoreOptions = {}): Promise<TestS3> {
  const base = loadSettings(process.env);
  let endpoint = base.s3Endpoint;
  let stopServer = (): Promise<void> => Promise.resolve();
  if (endpoint === undefined) {
    const directory = await mkdtemp(join(tmpdir(), 'scenecache-s3-'));
    const server = await startEmbeddedS3({ port: 0, directory });
    endpoint = server.endpoint;
    stopServer = async () => {
      await server.close();
      await rm(directory, { recursive: true, force: true });
    };
  }
  const embedded = base.s3Endpoint === undefined;
  const settings = {
    s3Endpoint: endpoint,
    s3Region: base.s3Region,
    s3AccessKeyId: base.s3AccessKeyId,
    s3SecretAccessKey: base.s3SecretAccessKey,
    s3ForcePathStyle: base.s3ForcePathStyle,
    s3RequestChecksumCalculation: base.s3RequestChecksumCalculation,
    s3ResponseChecksumValidation: base.s3ResponseChecksumValidation,
  };
  const client = createS3Client(settings);
  const store = new ObjectStore(client, storeOptions);
  const issued: string[] = [];
  return {
    endpoint,
    embedded,
    client,
    store,
    settings,
    env: {
      S3_ENDPOINT: endpoint,
      S3_REGION: settings.s3Region,
      S3_ACCESS_KEY_ID: settings.s3AccessKeyId,
      S3_SECRET_ACCESS_KEY: settings.s3SecretAccessKey,
      S3_FORCE_PATH_STYLE: String(settings.s3ForcePathStyle),
      S3_REQUEST_CHECKSUM_CALCULATION: settings.s3RequestChecksumCalculation,
      S3_RESPONSE_CHECKSUM_VALIDATION: settings.s3ResponseChecksumValidation,
    },
    uniqueBucket(label: string): string {
      const name = testBucketName(label);
      issued.push(name);
      return name;
    },
    async close(): Promise<void> {
      // The temporary s3rver goes with its directory; an external server keeps data, so clean up.
      if (!embedded) await Promise.all(issued.map((bucket) => deleteBucketWithObjects(store, client, bucket)));
      client.destroy();
      await stopServer();
    },
  };
}

/**
 * A unique, valid S3 bucket name from `label`: lower-case letters, digits and hyphens, 3–63
 * characters, starting and ending with a letter or digit, e.g. `t-copy-metadata-5f0c2a9e81d4`.
 * docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
 */
export function testBucketName(label: string): string {
  const slug = label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 36)
    .replace(/-+$/, '');
  const suffix = randomBytes(6).toString('hex');
  return slug === '' ? `t-${suffix}` : `t-${slug}-${suffix}`;
}

/** Best effort: an external server may hold buckets a failed test never created. */
async function deleteBucketWithObjects(store: ObjectStore, client: S3Client, bucket: string): Promise<void> {
  try {
    const keys = await store.listKeys(bucket);
    await Promise.all(keys.map((key) => store.deleteObject(bucket, key)));
    await client.send(new DeleteBucketCommand({ Bucket: bucket }));
  } catch {
    // NoSuchBucket, or leftovers of a failed test: nothing to do in teardown.
  }
}
