/** What tests see of advisory locks: the ones granted in the current database, from `pg_locks`. */
import { sql, type Kysely } from 'kysely';

/** One granted advisory lock: the backend holding it, its 64-bit key, the holder's application_name. */
export interface HeldAdvisoryLock {
  pid: number;
  /** `(classid << 32) | objid` as text: compare with `hashtextextended('scene:'||id, 0)::text`. */
  key: string;
  application_name: string | null;
}

/** The advisory locks granted right now in `db`'s database (other databases on the server are other tests'). */
export async function heldAdvisoryLocks<DB>(db: Kysely<DB>): Promise<HeldAdvisoryLock[]> {
  const res = await sql<HeldAdvisoryLock>`
    SELECT l.pid, ((l.classid::bigint << 32) | l.objid::bigint)::text AS key, a.application_name
      FROM pg_locks l
      JOIN pg_database d ON d.oid = l.database
      LEFT JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()`.execute(db);
  return res.rows;
}
