/**
 * Schema of the `GET /v1/fleet` reply: the download queue's depth by state, the fleet-wide
 * upstream slots in use and the CDSE account's rolling 30-day transfer budget. The queue states
 * are core's `QUEUE_DEPTH_STATES` (the same ones the `scenecache_queue_jobs{state}` gauge
 * exports), so the API and the metrics never disagree on them.
 */
import { z } from 'zod';
import { QUEUE_DEPTH_STATES } from '@scenecache/core';

/** A queue state as named in the reply (and in the gauge's `state` label). */
export type QueueDepthState = keyof typeof QUEUE_DEPTH_STATES;

/** What each state means, for the OpenAPI document. */
const STATE_DESCRIPTIONS: Readonly<Record<QueueDepthState, string>> = {
  waiting: 'Jobs ready to run, first in first out.',
  prioritized: 'Jobs ready to run, by priority (enqueued with `priority`).',
  delayed: 'Jobs waiting for a retry backoff, for another job’s download of their scene, or for a free upstream slot.',
  active: 'Jobs a worker is processing now.',
};

const jobCount = z.number().int().min(0);

/** One count (jobs) per queue state. */
const stateCounts = Object.fromEntries(
  (Object.keys(QUEUE_DEPTH_STATES) as QueueDepthState[]).map((state) => [state, jobCount.describe(STATE_DESCRIPTIONS[state])]),
) as Record<QueueDepthState, typeof jobCount>;

/** `GET /v1/fleet` reply. */
export const fleetSchema = z.object({
  queue: z.object({
    ...stateCounts,
    backlog: jobCount.describe(
      'waiting + prioritized + delayed + active: every job not finished yet. The figure to scale workers on (e.g. a KEDA `metrics-api` trigger with `valueLocation: queue.backlog`).',
    ),
  }),
  upstream_slots: z.object({
    in_use: z.number().int().min(0).describe('Upstream (CDSE) download slots held now, fleet-wide (granted advisory locks `upstream-slot:<i>`).'),
    limit: z.number().int().min(1).describe('`UPSTREAM_CONCURRENCY`: the most concurrent upstream downloads the fleet allows.'),
  }),
  upstream_budget: z
    .object({
      window_bytes: z
        .number()
        .int()
        .min(0)
        .describe('Bytes of the upstream file downloads started in the last 30 days, fleet-wide (`upstream_transfers`; a file counts its full size from when its download starts).'),
      budget_bytes: z.number().int().min(1).describe('`UPSTREAM_MONTHLY_BYTES`: the bytes the fleet may download from CDSE per rolling 30 days (CDSE: 12 TB per account).'),
      used_ratio: z
        .number()
        .min(0)
        .describe('window_bytes / budget_bytes, not rounded and not capped at 1. Once the next file would not fit in the budget (so from just below 1), jobs that need a download wait (`waiting_for: upstream_budget`).'),
      frees_at: z.iso
        .datetime()
        .nullable()
        .describe('When the oldest download in the window leaves it (its start + 30 days; ISO 8601, UTC), freeing its bytes; null when the window is empty.'),
    })
    .describe('The CDSE account\'s rolling 30-day transfer budget: past it, downloads wait while jobs served from the cache go on.'),
  /** When the figures were read. */
  at: z.iso.datetime().describe('When the figures were read (ISO 8601, UTC).'),
});
export type FleetView = z.infer<typeof fleetSchema>;
