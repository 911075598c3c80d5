import { encodeCopySource } from '@scenecache/storage';

describe('encodeCopySource', () => {
  it.each([
    ['bucket', 'a/b/c.jp2', 'bucket/a/b/c.jp2'],
    ['bucket', 'with space/x y.jp2', 'bucket/with%20space/x%20y.jp2'],
    ['bucket', 'a+b/c=d&e.jp2', 'bucket/a%2Bb/c%3Dd%26e.jp2'],
    ['bucket', '100%/q?#.jp2', 'bucket/100%25/q%3F%23.jp2'],
    ['bucket', 'ü/雪.jp2', 'bucket/%C3%BC/%E9%9B%AA.jp2'],
    ['bucket', 'trailing/', 'bucket/trailing/'],
  ])('%s + %s → %s (each segment encoded, slashes kept)', (bucket, key, expected) => {
    expect(encodeCopySource(bucket, key)).toBe(expected);
  });
});
