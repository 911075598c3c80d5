import { startTestS3, type TestS3 } from '@scenecache/testing';
import { generatedStream } from './generated-stream.js';

const MB = 1_000_000;

let s3: TestS3;

beforeAll(async () => {
  s3 = await startTestS3();
});

afterAll(async () => {
  await s3.close();
});

it('uploads a 300 MB stream with memory bounded by the parts in flight, not the body size', async () => {
  const bucket = s3.uniqueBucket('upload-memory');
  await s3.store.ensureBucket(bucket);
  const size = 300 * MB;
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 5);
  try {
    // 5 MiB parts, 2 in flight: ~20 MiB live. RSS adds garbage the GC has not collected yet (V8
    // collects when external memory has grown by ~64 MB) and the in-process s3rver's own buffers.
    const result = await s3.store.uploadStream({
      bucket,
      key: 'big.jp2',
      body: generatedStream(size, { reuseChunks: true }),
      contentLength: size,
      partSizeBytes: 5 * 1024 * 1024,
      queueSize: 2,
    });
    expect(result.size).toBe(size);
  } finally {
    clearInterval(sampler);
  }
  peak = Math.max(peak, process.memoryUsage().rss);
  const growth = peak - baseline;
  console.info(`300 MB upload: RSS ${Math.round(baseline / MB)} MB → peak ${Math.round(peak / MB)} MB (+${Math.round(growth / MB)} MB)`);
  expect(growth).toBeLessThan(150 * MB);
  expect((await s3.store.headObject(bucket, 'big.jp2'))?.size).toBe(size);
}, 120_000);
