/** Small helpers every integration test needs: poll until something holds, hash what S3 returns. */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Poll `probe` every `everyMs` until it returns something other than `undefined` or `false`, and
 * resolve with that value.
 * @throws Error naming `what` after `timeoutMs` (ms).
 */
export async function until<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** SHA3-256 (lower-case hex) and length (bytes) of a stream, e.g. an object read back from S3. */
export async function sha3Of(stream: AsyncIterable<unknown>): Promise<{ sha3: string; bytes: number }> {
  const hash = createHash('sha3-256');
  let bytes = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha3: hash.digest('hex'), bytes };
}
