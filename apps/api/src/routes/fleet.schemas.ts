/**
 * Schema of the `GET /v1/fleet` reply: the download queue's depth by state and the fleet-wide
 * upstream slots in use. The queue states are core's `QUEUE_DEPTH_STATES` (the same ones the
 * `scenecache_queue_jobs{state}` gauge exports), so the API and the metrics never disagree on them.
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
  /** When the figures were read. */
  at: z.iso.datetime().describe('When the figures were read (ISO 8601, UTC).'),
});
export type FleetView = z.infer<typeof fleetSchema>;
