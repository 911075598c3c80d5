/** Deterministic pseudo-random byte streams for upload tests (AES-256-CTR keystream: ~GB/s, no memory). */
import { createCipheriv, createHash } from 'node:crypto';
import { Readable, Transform } from 'node:stream';

const CHUNK = 1024 * 1024;
const ZEROS = Buffer.alloc(CHUNK);

/** Options of {@link generatedStream}. */
export interface GeneratedStreamOptions {
  /** Same seed, same bytes. @defaultValue `seed` */
  seed?: string;
  /** Emit `error` (destroy with it) once this many bytes have been produced. */
  failAfterBytes?: number;
  /** The error for `failAfterBytes`. */
  error?: Error;
  /**
   * Cycle through 16 pre-generated 1 MiB chunks instead of producing new ones: no allocation per
   * chunk, so memory measurements see only what the consumer allocates. (Bytes repeat every 16 MiB.)
   */
  reuseChunks?: boolean;
}

/** `size` bytes of a keystream derived from `seed`, pushed in 1 MiB chunks on demand. */
export function generatedStream(size: number, options: GeneratedStreamOptions = {}): Readable {
  const key = createHash('sha256').update(options.seed ?? 'seed').digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const pool = options.reuseChunks ? Array.from({ length: 16 }, () => cipher.update(ZEROS)) : undefined;
  let produced = 0;
  let index = 0;
  return new Readable({
    highWaterMark: CHUNK,
    read() {
      if (options.failAfterBytes !== undefined && produced >= options.failAfterBytes) {
        this.destroy(options.error ?? new Error('generated stream failed'));
        return;
      }
      const n = Math.min(CHUNK, size - produced);
      if (n <= 0) {
        this.push(null);
        return;
      }
      produced += n;
      if (pool) {
        const chunk = pool[index++ % pool.length]!;
        this.push(n === CHUNK ? chunk : chunk.subarray(0, n));
      } else {
        this.push(cipher.update(n === CHUNK ? ZEROS : ZEROS.subarray(0, n)));
      }
    },
  });
}

/** Hex SHA-256 of everything `stream` yields. */
export async function sha256Of(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** A pass-through that fails in `flush` (at the very end), like a size/hash check that does not match. */
export function failingAtEnd(error: Error): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      callback(null, chunk);
    },
    flush(callback) {
      callback(error);
    },
  });
}
