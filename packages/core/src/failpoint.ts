/**
 * Failpoints: named places in the pipeline where a test stops or kills a worker process at an
 * exact moment ("SIGKILL after the upload, before the bands are registered"), the technique of
 * FreeBSD's fail(9) and TiKV's fail-rs. Off unless the `FAILPOINTS` setting names one (tests
 * only; never set it in production). Reaching an armed failpoint logs `failpoint reached` (warn,
 * with `failpoint` and `action`) before acting, so a test watching the log knows where the
 * process is.
 */
import type { Logger } from 'pino';
import { ScenecacheError } from './errors.js';

/** The failpoints of the worker's pipeline, in the order a download job reaches them. */
export const FAILPOINT_NAMES = Object.freeze([
  /** The product's scene lock is held (shared, the product prepared); no band lock taken, nothing downloaded yet. */
  'scene-locked',
  /**
   * A band file is whole and verified in the global bucket; not registered yet. Reached once per
   * band: bands of one job stream at once, each stops here on its own.
   */
  'bands-stored',
  /** A band is registered; its band lock and upstream slot are still held (once per band). */
  'bands-registered',
  /** The first band is copied into the tenant bucket; the others are not (mid-fan-out). */
  'tenant-copied',
] as const);

/** One of {@link FAILPOINT_NAMES}. */
export type FailpointName = (typeof FAILPOINT_NAMES)[number];

/** What an armed failpoint does: wait forever (a test kills the process), SIGKILL itself, or throw. */
export type FailpointAction = 'pause' | 'kill' | 'error';

/**
 * Act on failpoint `name` if `failpoints` (the `FAILPOINTS` setting) arms it; otherwise return at once.
 * @throws ScenecacheError `failpoint` (retryable) for the `error` action. `pause` never returns.
 */
export async function failpoint(failpoints: Readonly<Record<string, FailpointAction>>, name: FailpointName, logger: Logger): Promise<void> {
  const action = failpoints[name];
  if (action === undefined) return;
  logger.warn({ failpoint: name, action }, 'failpoint reached');
  if (action === 'kill') process.kill(process.pid, 'SIGKILL');
  if (action === 'error') throw new ScenecacheError('failpoint', `failpoint ${name} armed with error`, { retryable: true });
  await new Promise<never>(() => undefined);
}
