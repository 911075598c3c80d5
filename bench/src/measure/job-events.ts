/**
 * A timeline of every scene download job, from BullMQ's event stream (`QueueEvents` on
 * `<QUEUE_PREFIX>:scene-downloads:events`): when each job was added, became waiting, active,
 * delayed, completed or failed. It is the precise way to see a job finish — the worker emits
 * `completed` as it moves the job, where polling `download_jobs` adds up to a polling interval.
 *
 * Each event carries two times on the machine's clock (Redis, Postgres, the workers and this
 * process run on one machine, so their clocks are one):
 * - `at`: when Redis appended it — the ms part of the stream entry id (`<ms>-<seq>`), free of
 *   the delivery delay to this process (which shares its event loop with the in-process S3);
 * - `receivedAt` / `receivedPerf`: `Date.now()` / `performance.now()` when this process got it.
 *
 * The stream is read from its start (`lastEventId: '0'`), so no event of a job enqueued after
 * {@link JobEventLog.open} is missed whatever the timing of the first blocking read.
 */
import { performance } from 'node:perf_hooks';
import { Job, Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { SCENE_DOWNLOAD_QUEUE, type DownloadJobData, type DownloadJobResult, type Settings } from '@scenecache/core';

/** The BullMQ events kept (the others: progress, drained, removed… are not job state changes we time). */
export type JobEventName = 'added' | 'waiting' | 'active' | 'delayed' | 'completed' | 'failed';

/** One state change of one job. Times in ms since the epoch (machine clock), except `receivedPerf`. */
export interface JobEvent {
  readonly event: JobEventName;
  /** The state the job left (`waiting`, `delayed`, `active`…) when BullMQ says so. */
  readonly prev?: string | undefined;
  /** `delayed` only: when the delay ends (ms since the epoch). */
  readonly delayUntil?: number | undefined;
  /** `failed` only: the reason. */
  readonly failedReason?: string | undefined;
  /** When Redis appended the event (stream entry id). */
  readonly at: number;
  /** `Date.now()` when this process received it. */
  readonly receivedAt: number;
  /** `performance.now()` when this process received it (for durations measured in this process). */
  readonly receivedPerf: number;
}

/** The ms since the epoch of a Redis stream entry id `<ms>-<seq>`. */
function streamIdMs(id: string): number {
  return Number(id.slice(0, id.indexOf('-')));
}

/** Follows a queue's events (see the module comment). Close it with {@link close}. */
export class JobEventLog {
  private readonly byJob = new Map<string, JobEvent[]>();
  private readonly listeners = new Set<(jobId: string, event: JobEvent) => void>();

  private constructor(
    /** The scene download queue (e.g. to read a job's `timestamp`/`processedOn`/`finishedOn`). */
    readonly queue: Queue<DownloadJobData, DownloadJobResult>,
    private readonly queueEvents: QueueEvents,
    private readonly connection: Redis,
  ) {}

  /**
   * Start following the scene download queue of `settings.queuePrefix` on `settings.redisUrl`.
   * @throws when Redis is unreachable.
   */
  static async open(settings: Pick<Settings, 'redisUrl' | 'queuePrefix'>): Promise<JobEventLog> {
    const connection = new Redis(settings.redisUrl, { maxRetriesPerRequest: null });
    const queue = new Queue<DownloadJobData, DownloadJobResult>(SCENE_DOWNLOAD_QUEUE, { connection, prefix: settings.queuePrefix });
    // QueueEvents blocks on XREAD: it gets its own connection (BullMQ creates it from the URL).
    const queueEvents = new QueueEvents(SCENE_DOWNLOAD_QUEUE, { connection: { url: settings.redisUrl }, prefix: settings.queuePrefix, lastEventId: '0' });
    const log = new JobEventLog(queue, queueEvents, connection);
    const add = (jobId: string, id: string, event: JobEventName, extra: Partial<JobEvent> = {}): void =>
      log.record(jobId, { event, ...extra, at: streamIdMs(id), receivedAt: Date.now(), receivedPerf: performance.now() });
    queueEvents.on('added', ({ jobId }, id) => add(jobId, id, 'added'));
    queueEvents.on('waiting', ({ jobId, prev }, id) => add(jobId, id, 'waiting', { prev }));
    queueEvents.on('active', ({ jobId, prev }, id) => add(jobId, id, 'active', { prev }));
    queueEvents.on('delayed', ({ jobId, delay }, id) => add(jobId, id, 'delayed', { delayUntil: delay }));
    queueEvents.on('completed', ({ jobId, prev }, id) => add(jobId, id, 'completed', { prev }));
    queueEvents.on('failed', ({ jobId, failedReason, prev }, id) => add(jobId, id, 'failed', { prev, failedReason }));
    queueEvents.on('error', () => undefined); // reconnects on its own; a failed wait times out
    connection.on('error', () => undefined);
    await Promise.all([queueEvents.waitUntilReady(), queue.waitUntilReady()]);
    return log;
  }

  private record(jobId: string, event: JobEvent): void {
    let events = this.byJob.get(jobId);
    if (!events) this.byJob.set(jobId, (events = []));
    events.push(event);
    for (const listener of this.listeners) listener(jobId, event);
  }

  /** Every event of `jobId` so far, in stream order. */
  events(jobId: string): readonly JobEvent[] {
    return this.byJob.get(jobId) ?? [];
  }

  /**
   * The first event of `jobId` (past or future) that `match` accepts.
   * @throws Error after `timeoutMs` (ms).
   */
  waitFor(jobId: string, match: (event: JobEvent) => boolean, timeoutMs: number): Promise<JobEvent> {
    const seen = this.events(jobId).find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const listener = (id: string, event: JobEvent): void => {
        if (id !== jobId || !match(event)) return;
        clearTimeout(timer);
        this.listeners.delete(listener);
        resolve(event);
      };
      const timer = setTimeout(() => {
        this.listeners.delete(listener);
        const last = this.events(jobId).at(-1);
        reject(new Error(`job ${jobId}: no matching event within ${timeoutMs} ms (last: ${last ? last.event : 'none'})`));
      }, timeoutMs);
      this.listeners.add(listener);
    });
  }

  /**
   * The `completed` (or final `failed`) event of each of `jobIds`, in their order.
   * @throws Error when one does not finish within `timeoutMs` (ms, for the whole set).
   */
  async waitForFinished(jobIds: readonly string[], timeoutMs: number): Promise<JobEvent[]> {
    const finished = (e: JobEvent): boolean => e.event === 'completed' || e.event === 'failed';
    return Promise.all(jobIds.map((id) => this.waitFor(id, finished, timeoutMs)));
  }

  /** The BullMQ job (`timestamp`, `processedOn`, `finishedOn`, `returnvalue`…), while BullMQ still keeps it. */
  async job(jobId: string): Promise<Job<DownloadJobData, DownloadJobResult> | undefined> {
    return Job.fromId<DownloadJobData, DownloadJobResult>(this.queue, jobId);
  }

  async close(): Promise<void> {
    this.listeners.clear();
    await this.queueEvents.close();
    await this.queue.close();
    this.connection.disconnect();
  }
}
