/**
 * `api_keys`: the API's Bearer keys, stored hashed (`npm run keys` manages them).
 *
 * - `key_hash`: SHA-256 of the whole secret (`sck_…`), lower-case hex; the secret itself is never
 *   stored. Unique: the lookup of every authenticated request.
 * - `prefix`: the secret's first characters, to tell keys apart in listings and logs.
 * - `tenant_id`: the tenant the key acts for; NULL = an admin key (every tenant, admin routes).
 * - `revoked_at`: set once by `revoke`; a revoked key is refused at once and never reactivated.
 * - `last_used_at`: bumped on use at most once a minute (not a per-request write).
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('api_keys')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('name', 'text')
    .addColumn('key_hash', 'text', (c) => c.notNull().unique().check(sql`key_hash ~ '^[0-9a-f]{64}$'`))
    .addColumn('prefix', 'text', (c) => c.notNull())
    .addColumn('tenant_id', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('revoked_at', 'timestamptz')
    .addColumn('last_used_at', 'timestamptz')
    .execute();
  await sql`COMMENT ON TABLE api_keys IS 'scenecache: API Bearer keys (SHA-256 of the secret); tenant_id NULL = admin key'`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('api_keys').ifExists().execute();
}
