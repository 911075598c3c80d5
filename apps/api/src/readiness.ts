/**
 * Readiness: whether this API process should get traffic. It is ready when every dependency check
 * (Postgres, Redis, S3, …) answers within its deadline and shutdown has not started; shutdown fails
 * readiness first so the load balancer stops sending requests before the server closes.
 */
import type { Logger } from '@scenecache/core';

/** One dependency check: resolves when the dependency answers, rejects otherwise. */
export type ReadinessCheck = (signal: AbortSignal) => Promise<unknown>;

/** The outcome of {@link Readiness.check}. */
export interface ReadinessReport {
  ready: boolean;
  /** `ok`, `failing` (some check failed) or `shutting_down`. */
  status: 'ok' | 'failing' | 'shutting_down';
  /** Check name → `ok` or `fail`. */
  checks: Record<string, 'ok' | 'fail'>;
  /** Check name → why it failed (only failed checks). */
  errors?: Record<string, string>;
}

/** Runs the readiness checks and remembers whether shutdown started. */
export class Readiness {
  private shutdownStarted = false;

  /**
   * @param checks - name → check, run in parallel.
   * @param timeoutMs - deadline of each check (ms).
   */
  constructor(
    private readonly checks: Readonly<Record<string, ReadinessCheck>>,
    private readonly timeoutMs: number,
    private readonly logger: Logger,
  ) {}

  /** Fail readiness from now on (idempotent). */
  beginShutdown(): void {
    this.shutdownStarted = true;
  }

  get shuttingDown(): boolean {
    return this.shutdownStarted;
  }

  /** Run every check under its deadline. */
  async check(): Promise<ReadinessReport> {
    if (this.shutdownStarted) return { ready: false, status: 'shutting_down', checks: {} };
    const names = Object.keys(this.checks);
    const outcomes = await Promise.all(names.map((name) => this.run(name)));
    const checks: Record<string, 'ok' | 'fail'> = {};
    const errors: Record<string, string> = {};
    names.forEach((name, i) => {
      const error = outcomes[i];
      checks[name] = error === undefined ? 'ok' : 'fail';
      if (error !== undefined) errors[name] = error;
    });
    const ready = Object.keys(errors).length === 0;
    if (!ready) this.logger.warn({ errors }, 'not ready');
    return ready ? { ready, status: 'ok', checks } : { ready, status: 'failing', checks, errors };
  }

  /** @returns `undefined` when the check passed, else why it failed. */
  private async run(name: string): Promise<string | undefined> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // Reject before aborting: a check that settles on abort must not win the race.
        reject(new Error(`no answer within ${this.timeoutMs} ms`));
        controller.abort();
      }, this.timeoutMs);
    });
    try {
      await Promise.race([this.checks[name]!(controller.signal), deadline]);
      return undefined;
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    } finally {
      clearTimeout(timer);
    }
  }
}
