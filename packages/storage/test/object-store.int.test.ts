import { Readable } from 'node:stream';
import { startTestS3, testBucketName, type TestS3 } from '@scenecache/testing';
import { createS3Client, ObjectStore, s3ClientOptionsFromSettings, StorageError } from '@scenecache/storage';
import { generatedStream, sha256Of } from './generated-stream.js';

let s3: TestS3;

beforeAll(async () => {
  s3 = await startTestS3();
});

afterAll(async () => {
  await s3.close();
});

describe('ensureBucket', () => {
  it('creates a missing bucket and is idempotent', async () => {
    const bucket = s3.uniqueBucket('ensure-idempotent');
    await s3.store.ensureBucket(bucket);
    await s3.store.ensureBucket(bucket);
    // A fresh store knows nothing cached: it finds the bucket there.
    await new ObjectStore(s3.client).ensureBucket(bucket);
    expect(await s3.store.listKeys(bucket)).toEqual([]);
  });

  it('tolerates many workers creating the same bucket at once', async () => {
    const bucket = s3.uniqueBucket('ensure-race');
    // Separate stores (no shared cache), as separate worker processes would be, plus repeated
    // calls on one store, which share one request.
    const stores = Array.from({ length: 8 }, () => new ObjectStore(s3.client));
    await Promise.all([...stores, s3.store, s3.store].map((store) => store.ensureBucket(bucket)));
    await s3.store.uploadStream({ bucket, key: 'k', body: Readable.from([Buffer.from('x')]) });
    expect(await s3.store.listKeys(bucket)).toEqual(['k']);
  });

  it('rejects an invalid (too short) bucket name with a StorageError, and does not cache the failure', async () => {
    const promise = s3.store.ensureBucket('ab');
    await expect(promise).rejects.toBeInstanceOf(StorageError);
    await expect(promise).rejects.toMatchObject({ code: 'storage_error', s3Code: 'InvalidBucketName' });
    await expect(s3.store.ensureBucket('ab')).rejects.toBeInstanceOf(StorageError);
  });
});

describe('headObject', () => {
  it('reports size, unquoted ETag and metadata of an object, undefined when absent', async () => {
    const bucket = s3.uniqueBucket('head');
    await s3.store.ensureBucket(bucket);
    const body = Buffer.from('0123456789');
    const put = await s3.store.uploadStream({ bucket, key: 'a/b.jp2', body: Readable.from([body]), metadata: { 'sha3-256': 'f'.repeat(64) } });
    const head = await s3.store.headObject(bucket, 'a/b.jp2');
    expect(head).toEqual({
      size: 10,
      etag: put.etag,
      metadata: { 'sha3-256': 'f'.repeat(64) },
      contentType: expect.any(String) as string,
      lastModified: expect.any(Date) as Date,
    });
    expect(head?.etag).toMatch(/^[0-9a-f]{32}$/);
    expect(await s3.store.headObject(bucket, 'a/missing.jp2')).toBeUndefined();
    expect(await s3.store.headObject(s3.uniqueBucket('no-such-bucket'), 'a/b.jp2')).toBeUndefined();
  });
});

describe('copyObject', () => {
  // Keys that break unless CopySource is encoded segment by segment: spaces, `+` (S3 reads a raw
  // `+` as a space), `=`, `&`, `%`, and characters Node refuses to send raw in a header.
  const keys = [
    'scenes/with space/T32TNS B04 (10m).jp2',
    'scenes/a+b/c+d.jp2',
    'scenes/x=1/y=2&z=3.jp2',
    'scenes/percent%20literal/100%.jp2',
    'scenes/ünïcødé/雪-🛰️.jp2',
  ];

  it.each(keys)('copies %s with bytes and metadata intact', async (key) => {
    const source = s3.uniqueBucket('copy-src');
    const tenant = s3.uniqueBucket('copy-dst');
    await Promise.all([s3.store.ensureBucket(source), s3.store.ensureBucket(tenant)]);
    const size = 3 * 1024 * 1024 + 7;
    await s3.store.uploadStream({
      bucket: source,
      key,
      body: generatedStream(size, { seed: key }),
      metadata: { 'sha3-256': 'c0ffee'.padEnd(64, '0'), band: 'B04' },
      contentType: 'image/jp2',
    });
    const { etag } = await s3.store.copyObject({ sourceBucket: source, sourceKey: key, bucket: tenant, key, size });
    expect(etag).toMatch(/^[0-9a-f]{32}/);
    const head = await s3.store.headObject(tenant, key);
    expect(head).toMatchObject({ size, etag, metadata: { 'sha3-256': 'c0ffee'.padEnd(64, '0'), band: 'B04' }, contentType: 'image/jp2' });
    expect(await sha256Of(await s3.store.getObjectStream(tenant, key))).toBe(await sha256Of(generatedStream(size, { seed: key })));
    expect(await s3.store.listKeys(tenant)).toEqual([key]);
  });

  it('copies under another key within the same bucket', async () => {
    const bucket = s3.uniqueBucket('copy-same');
    await s3.store.ensureBucket(bucket);
    await s3.store.uploadStream({ bucket, key: 'from', body: Readable.from([Buffer.from('abc')]) });
    await s3.store.copyObject({ sourceBucket: bucket, sourceKey: 'from', bucket, key: 'to/here', size: 3 });
    expect(await s3.store.listKeys(bucket)).toEqual(['from', 'to/here']);
  });

  it('fails with a StorageError naming both ends when the source is missing', async () => {
    const bucket = s3.uniqueBucket('copy-missing');
    await s3.store.ensureBucket(bucket);
    const copy = s3.store.copyObject({ sourceBucket: bucket, sourceKey: 'nope', bucket, key: 'dst', size: 1 });
    await expect(copy).rejects.toMatchObject({ code: 'storage_error', retryable: true, s3Code: 'NoSuchKey', operation: 'CopyObject' });
    await expect(copy).rejects.toThrow(`s3://${bucket}/dst (from s3://${bucket}/nope)`);
  });
});

describe('listKeys and deleteObject', () => {
  it('lists by prefix and deletes, deleting a missing key too', async () => {
    const bucket = s3.uniqueBucket('list');
    await s3.store.ensureBucket(bucket);
    for (const key of ['p/1', 'p/2', 'q/1']) await s3.store.uploadStream({ bucket, key, body: Readable.from([Buffer.from(key)]) });
    expect(await s3.store.listKeys(bucket, 'p/')).toEqual(['p/1', 'p/2']);
    await s3.store.deleteObject(bucket, 'p/1');
    await s3.store.deleteObject(bucket, 'p/1');
    expect(await s3.store.listKeys(bucket)).toEqual(['p/2', 'q/1']);
  });

  it('getObjectStream of a missing key fails with NoSuchKey', async () => {
    const bucket = s3.uniqueBucket('get-missing');
    await s3.store.ensureBucket(bucket);
    await expect(s3.store.getObjectStream(bucket, 'nope')).rejects.toMatchObject({ s3Code: 'NoSuchKey', operation: 'GetObject' });
  });
});

describe('deleteObjects, listObjectPages, listMultipartUploads', () => {
  it('deletes 1,001 keys in two DeleteObjects requests (missing keys count as deleted) and pages the listing in key order', async () => {
    const bucket = s3.uniqueBucket('delete-many');
    await s3.store.ensureBucket(bucket);
    const keys = Array.from({ length: 1_001 }, (_, i) => `p/${String(i).padStart(4, '0')}.jp2`);
    for (let i = 0; i < keys.length; i += 50) {
      await Promise.all(keys.slice(i, i + 50).map((key) => s3.store.uploadStream({ bucket, key, body: Readable.from([Buffer.from(key)]) })));
    }
    await s3.store.uploadStream({ bucket, key: 'q/keep.jp2', body: Readable.from([Buffer.from('keep')]) });
    const pages: number[] = [];
    const listed: string[] = [];
    for await (const page of s3.store.listObjectPages(bucket, 'p/')) {
      pages.push(page.length);
      for (const o of page) {
        listed.push(o.key);
        expect(o.size).toBe(o.key.length);
        expect(o.lastModified).toBeInstanceOf(Date);
      }
    }
    expect(pages).toEqual([1000, 1]);
    expect(listed).toEqual(keys);
    expect(await s3.store.deleteObjects(bucket, [...keys, 'p/never-there.jp2'])).toBe(1_002);
    expect(await s3.store.listKeys(bucket)).toEqual(['q/keep.jp2']);
    expect(await s3.store.deleteObjects(bucket, [])).toBe(0);
  });

  it('deletes two keys of one directory in one request without a retry (the embedded s3rver answers like S3)', async () => {
    const bucket = s3.uniqueBucket('delete-same-dir');
    await s3.store.ensureBucket(bucket);
    const keys = ['sentinel-2/x/B02.jp2', 'sentinel-2/x/B03.jp2', 'sentinel-2/x/B04.jp2'];
    for (const key of keys) await s3.store.uploadStream({ bucket, key, body: Readable.from([Buffer.from(key)]) });
    const once = new ObjectStore(createS3Client({ ...s3ClientOptionsFromSettings(s3.settings), maxAttempts: 1 }));
    expect(await once.deleteObjects(bucket, keys)).toBe(3);
    expect(await s3.store.listKeys(bucket)).toEqual([]);
    once.client.destroy();
  });

  it('lists incomplete multipart uploads, or says the store does not (s3rver answers 501)', async () => {
    const bucket = s3.uniqueBucket('multipart-list');
    await s3.store.ensureBucket(bucket);
    const uploads = await s3.store.listMultipartUploads(bucket);
    if (s3.embedded) expect(uploads).toBeUndefined();
    else expect(uploads).toEqual([]);
  });
});

describe('testBucketName', () => {
  it('makes unique valid bucket names from any label', () => {
    const names = ['copy', 'A Very Long Label With Spaces And CAPS and more words than fit', '---', 'ü'].map(testBucketName);
    for (const name of names) expect(name).toMatch(/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/);
    expect(new Set(names).size).toBe(names.length);
    expect(testBucketName('copy')).not.toBe(testBucketName('copy'));
  });
});
