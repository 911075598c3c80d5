/**
 * The scene download queue's depth by state, as the API and every worker export it in the
 * `scenecache_queue_jobs{state}` gauge (read from Redis when scraped). Kept free of prom-client:
 * {@link queueDepthGauge} returns the gauge's configuration, each process builds the Gauge in its
 * own registry.
 */
import type { Logger } from './logger.js';

/** Gauge label `state` → BullMQ job-count type. */
export const QUEUE_DEPTH_STATES = Object.freeze({ waiting: 'wait', delayed: 'delayed', prioritized: 'prioritized', active: 'active' } as const);

/** The part of a BullMQ `Queue` the gauge reads. */
export interface QueueCounts {
  getJobCounts(...types: string[]): Promise<Record<string, number>>;
}

/** What the gauge's `collect` needs of a prom-client Gauge. */
interface SettableGauge {
  reset(): void;
  set(labels: { state: string }, value: number): void;
}

/** Longest a scrape waits for the queue counts (ms): a Redis that never connected would hang it. */
export const QUEUE_DEPTH_TIMEOUT_MS = 2_000;

/**
 * Configuration of the `scenecache_queue_jobs{state}` gauge: `new Gauge({...queueDepthGauge(queue, logger), registers})`.
 * When Redis cannot answer a scrape within `timeoutMs`, the gauge is left empty and a warning
 * logged; the scrape still succeeds (so Prometheus sees the process up and the queue unknown).
 */
export function queueDepthGauge(queue: QueueCounts, logger: Logger, timeoutMs = QUEUE_DEPTH_TIMEOUT_MS) {
  return {
    name: 'scenecache_queue_jobs',
    help: 'Jobs in the scene download queue by state (waiting, delayed, prioritized, active), read from Redis at scrape time.',
    labelNames: ['state'] as const,
    async collect(this: SettableGauge): Promise<void> {
      this.reset();
      try {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer from Redis within ${timeoutMs} ms`)), timeoutMs);
        });
        const counts = await Promise.race([queue.getJobCounts(...Object.values(QUEUE_DEPTH_STATES)), timeout]).finally(() => clearTimeout(timer));
        for (const [state, type] of Object.entries(QUEUE_DEPTH_STATES)) this.set({ state }, counts[type] ?? 0);
      } catch (err) {
        logger.warn({ err }, 'metrics: could not read the queue counts');
      }
    },
  };
}
