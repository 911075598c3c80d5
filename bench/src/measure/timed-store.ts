/**
 * An `ObjectStore` that keeps account of the S3 work done through it (the maintenance scenario
 * hands it to `CacheMaintenance`): time inside `deleteObjects` and inside each ListObjectsV2 page,
 * keys and pages, when the first listing started; plus, on its client, every HTTP attempt by
 * command and status (the SDK retries 5xx answers: a retried request shows up here only).
 * Times in ms (`performance.now()`).
 */
import { performance } from 'node:perf_hooks';
import type { S3Client } from '@aws-sdk/client-s3';
import { ObjectStore, type ListedObject } from '@scenecache/storage';

/** What a {@link TimedStore} has seen since its last {@link TimedStore.reset}. */
export interface StoreAccount {
  /** ms spent in `deleteObjects` calls. */
  deleteMs: number;
  deleteCalls: number;
  deletedKeys: number;
  /** The keys of each `deleteObjects` call, in order (to replay them). */
  deleteBatches: string[][];
  /** ms spent waiting for listing pages. */
  listMs: number;
  listPages: number;
  listedObjects: number;
  /** `performance.now()` when the first `listObjectPages` of `watchPrefix` started; `undefined` before. */
  listStartedAt: number | undefined;
  /** `"<command> <status>"` → HTTP attempts through the store's client (status `error` when no response came). */
  attempts: Record<string, number>;
}

const emptyAccount = (): StoreAccount => ({ deleteMs: 0, deleteCalls: 0, deletedKeys: 0, deleteBatches: [], listMs: 0, listPages: 0, listedObjects: 0, listStartedAt: undefined, attempts: {} });

/** See the module comment. `onListPage` is called after each page (progress lines). */
export class TimedStore extends ObjectStore {
  account: StoreAccount = emptyAccount();

  constructor(
    client: S3Client,
    private readonly watchPrefix: string,
    private readonly onListPage: (account: StoreAccount) => void = () => undefined,
  ) {
    super(client);
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const count = (status: string) => {
          const name = `${context.commandName ?? 'unknown'} ${status}`;
          this.account.attempts[name] = (this.account.attempts[name] ?? 0) + 1;
        };
        try {
          const out = await next(args);
          count(String((out.response as { statusCode?: number }).statusCode ?? 'unknown'));
          return out;
        } catch (err) {
          count(String((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode ?? 'error'));
          throw err;
        }
      },
      { step: 'deserialize', name: 'benchCountAttempts' },
    );
  }

  /** Start a new account. @returns the one that ends. */
  reset(): StoreAccount {
    const old = this.account;
    this.account = emptyAccount();
    return old;
  }

  override async deleteObjects(bucket: string, keys: readonly string[]): Promise<number> {
    const t0 = performance.now();
    this.account.deleteBatches.push([...keys]);
    try {
      const n = await super.deleteObjects(bucket, keys);
      this.account.deletedKeys += n;
      return n;
    } finally {
      this.account.deleteMs += performance.now() - t0;
      this.account.deleteCalls += 1;
    }
  }

  override async *listObjectPages(bucket: string, prefix?: string): AsyncGenerator<ListedObject[]> {
    if (prefix === this.watchPrefix) this.account.listStartedAt ??= performance.now();
    const pages = super.listObjectPages(bucket, prefix);
    for (;;) {
      const t0 = performance.now();
      const next = await pages.next();
      this.account.listMs += performance.now() - t0;
      if (next.done === true) return;
      this.account.listPages += 1;
      this.account.listedObjects += next.value.length;
      this.onListPage(this.account);
      yield next.value;
    }
  }
}
