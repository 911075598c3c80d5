/**
 * A worker's view of its own dependencies (Redis, Postgres): probed every few seconds in the
 * background, so the health probes read a state and never block on a dependency themselves.
 *
 * - A dependency is **down** from its first failed probe until a probe succeeds again; the worker
 *   is then not ready (`/readyz` 503) but stays live: restarting every worker does not bring Redis
 *   back, and jobs wait the outage out without spending attempts.
 * - A dependency unreachable for longer than `DEPENDENCY_LIVENESS_TIMEOUT_MS` (counted from its
 *   last successful probe) makes the worker **not live** (`/healthz` 503), so Kubernetes restarts a
 *   process that may be wedged on it — the outage may be this pod's network path alone — and, once
 *   per outage, `onLimitExceeded` runs: the worker gives up its advisory locks then, so a process
 *   that cannot make progress does not keep other workers from the files it locked.
 */
import type { Logger } from '@scenecache/core';

/** The dependencies a worker watches. */
export type WatchedDependency = 'redis' | 'postgres';

/** Options of {@link DependencyWatch}. */
export interface DependencyWatchOptions {
  /** One cheap round trip per dependency (e.g. `PING`, `SELECT 1`); a rejection means unreachable. */
  probes: Readonly<Record<WatchedDependency, () => Promise<unknown>>>;
  /** Unreachable this long (ms) since the last successful probe: not live. */
  livenessTimeoutMs: number;
  /** Time between probes (ms). @defaultValue 2000 */
  intervalMs?: number;
  /** A probe that has not answered after this long (ms) failed. @defaultValue 3000 */
  probeTimeoutMs?: number;
  /** Called once per outage, when a dependency passes `livenessTimeoutMs`. Must not throw. */
  onLimitExceeded?: (dependency: WatchedDependency, unreachableForMs: number) => void;
  logger: Logger;
  /** Clock (epoch ms), for tests. @defaultValue `Date.now` */
  now?: () => number;
}

interface DependencyState {
  /** Epoch ms of the last successful probe (the watch's start before the first). */
  lastOkAt: number;
  down: boolean;
  limitReported: boolean;
  probing: boolean;
}

/** See the module comment. Call {@link start} once and {@link stop} at shutdown. */
export class DependencyWatch {
  readonly #o: DependencyWatchOptions;
  readonly #now: () => number;
  readonly #state: Record<WatchedDependency, DependencyState>;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: DependencyWatchOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    const fresh = (): DependencyState => ({ lastOkAt: this.#now(), down: false, limitReported: false, probing: false });
    this.#state = { redis: fresh(), postgres: fresh() };
  }

  /** Start probing (every `intervalMs`); the timer does not keep the process alive. */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.probeAll(), this.#o.intervalMs ?? 2_000);
    this.#timer.unref();
  }

  /** Stop probing. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Probe every dependency once now (a probe still running is not started twice). Never rejects. */
  async probeAll(): Promise<void> {
    await Promise.all((Object.keys(this.#state) as WatchedDependency[]).map((d) => this.#probe(d)));
  }

  /** Dependencies whose last probe failed. */
  down(): WatchedDependency[] {
    return (Object.keys(this.#state) as WatchedDependency[]).filter((d) => this.#state[d].down);
  }

  /** Dependencies unreachable for longer than the liveness timeout. */
  overLimit(): WatchedDependency[] {
    return this.down().filter((d) => this.#unreachableForMs(d) > this.#o.livenessTimeoutMs);
  }

  #unreachableForMs(d: WatchedDependency): number {
    return this.#now() - this.#state[d].lastOkAt;
  }

  async #probe(d: WatchedDependency): Promise<void> {
    const state = this.#state[d];
    if (state.probing) {
      // The previous probe still hangs: that alone says the dependency is unreachable.
      this.#failed(d, new Error('the previous probe has not answered yet'));
      return;
    }
    state.probing = true;
    let timer: NodeJS.Timeout | undefined;
    const deadline = this.#o.probeTimeoutMs ?? 3_000;
    try {
      await Promise.race([
        this.#o.probes[d](),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${deadline} ms`)), deadline);
        }),
      ]);
      if (state.down) this.#o.logger.info({ dependency: d, unreachableForMs: this.#unreachableForMs(d) }, `${d} is reachable again`);
      state.lastOkAt = this.#now();
      state.down = false;
      state.limitReported = false;
    } catch (err) {
      this.#failed(d, err);
    } finally {
      clearTimeout(timer);
      state.probing = false;
    }
  }

  #failed(d: WatchedDependency, err: unknown): void {
    const state = this.#state[d];
    const unreachableForMs = this.#unreachableForMs(d);
    if (!state.down) this.#o.logger.warn({ dependency: d, err }, `${d} is unreachable; not ready until it answers again`);
    state.down = true;
    if (unreachableForMs > this.#o.livenessTimeoutMs && !state.limitReported) {
      state.limitReported = true;
      this.#o.logger.error(
        { dependency: d, unreachableForMs, livenessTimeoutMs: this.#o.livenessTimeoutMs },
        `${d} unreachable for longer than DEPENDENCY_LIVENESS_TIMEOUT_MS: not live (restart me), advisory locks given up`,
      );
      this.#o.onLimitExceeded?.(d, unreachableForMs);
    }
  }
}
