import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createLogger } from '@scenecache/core';
import { createS3Client, ensureEmbeddedS3, ObjectStore, resolveS3Endpoint, type ResolvedS3Endpoint } from '@scenecache/storage';
import { freePort, testBucketName } from '@scenecache/testing';

const logger = createLogger('embedded-s3-test', 'silent');
const credentials = {
  region: 'us-east-1',
  accessKeyId: 'S3RVER',
  secretAccessKey: 'S3RVER',
  forcePathStyle: true,
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
} as const;

let directory: string;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'scenecache-embedded-'));
});

afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

it('a second process on the same port uses the first one\'s server (owned: false), and both work', async () => {
  const port = await freePort();
  const settings = { embeddedS3Port: port, embeddedS3Dir: directory };
  const first = await ensureEmbeddedS3(settings, logger);
  let second: ResolvedS3Endpoint | undefined;
  const clients = [];
  const bucket = testBucketName('embedded-shared');
  try {
    second = await ensureEmbeddedS3(settings, logger);
    expect(first).toMatchObject({ endpoint: `http://127.0.0.1:${port}`, embedded: true, owned: true });
    expect(second).toMatchObject({ endpoint: `http://127.0.0.1:${port}`, embedded: true, owned: false });

    const a = createS3Client({ ...credentials, endpoint: first.endpoint });
    const b = createS3Client({ ...credentials, endpoint: second.endpoint });
    clients.push(a, b);
    await new ObjectStore(a).ensureBucket(bucket);
    await new ObjectStore(b).ensureBucket(bucket);
    await new ObjectStore(b).uploadStream({ bucket, key: 'via/b', body: Readable.from([Buffer.from('from b')]) });
    expect(await new ObjectStore(a).headObject(bucket, 'via/b')).toMatchObject({ size: 6 });

    await second.close(); // not the owner: a no-op
    expect(await new ObjectStore(a).listKeys(bucket)).toEqual(['via/b']);
  } finally {
    for (const c of clients) c.destroy();
    await first.close();
  }
  // Data stays on disk: a new server on the same directory serves it.
  const again = await ensureEmbeddedS3(settings, logger);
  const c = createS3Client({ ...credentials, endpoint: again.endpoint });
  try {
    expect(again.owned).toBe(true);
    expect(await new ObjectStore(c).listKeys(bucket)).toEqual(['via/b']);
  } finally {
    c.destroy();
    await again.close();
  }
});

it('refuses a port taken by something that is not S3', async () => {
  const other: Server = createServer((_req, res) => res.end('hello'));
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = other.address() as AddressInfo;
    await expect(ensureEmbeddedS3({ embeddedS3Port: port, embeddedS3Dir: directory }, logger)).rejects.toMatchObject({
      code: 'storage_error',
      message: expect.stringContaining(`port ${port}`) as string,
    });
  } finally {
    await new Promise((resolve) => other.close(resolve));
  }
});

it('resolveS3Endpoint uses S3_ENDPOINT when set, without starting anything', async () => {
  const resolved = await resolveS3Endpoint({ s3Endpoint: 'http://minio:9000', embeddedS3Port: 1, embeddedS3Dir: directory }, logger);
  expect(resolved).toMatchObject({ endpoint: 'http://minio:9000', embedded: false, owned: false });
  await resolved.close();
});
