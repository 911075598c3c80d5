/**
 * Synthetic band bytes: deterministic per (product, file path), any size, random access.
 *
 * The bytes are AES-256-CTR applied to zeros, keyed by `sha256("<sceneId>/<safe path>")`, with an
 * all-zero initial counter block. CTR mode makes byte `n` depend only on counter block `n / 16`, so
 * a Range request starting at `offset` starts the counter at `offset / 16` instead of generating
 * (and discarding) everything before it. AES with hardware support produces several GB/s, far
 * faster than the network or SHA3, so the sim never stores band bytes.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { Readable } from 'node:stream';

/** A file the sim can serve: its size in bytes and a way to read any byte range of it. */
export interface ByteSource {
  /** Size in bytes. */
  readonly size: number;
  /**
   * The bytes `[start, endExclusive)` in chunks of at most `chunkSize` bytes.
   * @throws RangeError when the range is outside `[0, size]`.
   */
  chunks(start: number, endExclusive: number, chunkSize: number): Iterable<Buffer>;
}

const ZEROS = Buffer.alloc(1 << 20);

/** The AES-256 key of one synthetic file: `sha256("<sceneId>/<path>")` (32 bytes). */
export function syntheticKey(sceneId: string, path: string): Buffer {
  return createHash('sha256').update(`${sceneId}/${path}`).digest();
}

/** The synthetic bytes of `path` in product `sceneId`, `size` bytes long. */
export function syntheticSource(sceneId: string, path: string, size: number): ByteSource {
  const key = syntheticKey(sceneId, path);
  return {
    size,
    *chunks(start: number, endExclusive: number, chunkSize: number): Iterable<Buffer> {
      if (start < 0 || endExclusive > size || start > endExclusive) {
        throw new RangeError(`range [${start}, ${endExclusive}) is outside 0..${size}`);
      }
      const step = Math.max(1, Math.min(chunkSize, ZEROS.length));
      const iv = Buffer.alloc(16);
      // The low 64 bits of the counter block hold the block index; files stay far below 2^64 blocks.
      iv.writeBigUInt64BE(BigInt(Math.floor(start / 16)), 8);
      const cipher = createCipheriv('aes-256-ctr', key, iv);
      const skip = start % 16;
      if (skip > 0) cipher.update(ZEROS.subarray(0, skip));
      for (let pos = start; pos < endExclusive; pos += step) {
        const n = Math.min(step, endExclusive - pos);
        // update() returns a fresh buffer, so callers may keep or mutate it.
        yield cipher.update(ZEROS.subarray(0, n));
      }
    },
  };
}

/** A {@link ByteSource} over bytes held in memory (the served `manifest.safe`). */
export function bufferSource(bytes: Buffer): ByteSource {
  return {
    size: bytes.length,
    *chunks(start: number, endExclusive: number, chunkSize: number): Iterable<Buffer> {
      if (start < 0 || endExclusive > bytes.length || start > endExclusive) {
        throw new RangeError(`range [${start}, ${endExclusive}) is outside 0..${bytes.length}`);
      }
      const step = Math.max(1, chunkSize);
      for (let pos = start; pos < endExclusive; pos += step) {
        yield Buffer.from(bytes.subarray(pos, Math.min(pos + step, endExclusive)));
      }
    },
  };
}

/** The whole content of a source as a Node stream (1 MiB chunks). */
export function sourceStream(source: ByteSource): Readable {
  return Readable.from(source.chunks(0, source.size, 1 << 20), { objectMode: false });
}

const HASH_CHUNK = 1 << 20;

/**
 * SHA3-256 of a source, lower-case hex. Hashes 1 MiB at a time and yields to the event loop
 * (`setImmediate`) between chunks, so hashing a 130 MB band (~0.3 s of CPU) never blocks request
 * handling for more than a few milliseconds.
 * @throws the signal's reason when `signal` aborts (the sim is closing).
 */
export async function sha3OfSource(source: ByteSource, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha3-256');
  for (const chunk of source.chunks(0, source.size, HASH_CHUNK)) {
    hash.update(chunk);
    await new Promise<void>((resolve) => setImmediate(resolve));
    signal?.throwIfAborted();
  }
  return hash.digest('hex');
}
