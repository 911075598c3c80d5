/**
 * Every migration, by name in apply order. A static map (not a folder scan) so the compiled app,
 * the migrate Job and the tests all see the same list. Never edit a migration that has shipped:
 * add a new one.
 */
import type { Migration } from 'kysely/migration';
import * as m0001 from './0001_initial.js';
import * as m0002 from './0002_dashboard_views.js';
import * as m0003 from './0003_api_keys.js';
import * as m0004 from './0004_upstream_engine.js';
import * as m0005 from './0005_dashboard_reader_grants.js';
import * as m0006 from './0006_job_daily_rollups.js';
import * as m0007 from './0007_cache_lifecycle.js';
import * as m0008 from './0008_product_stac_metadata.js';
import * as m0009 from './0009_job_callbacks_cancel.js';

export { STATS_READER_ROLE } from './0005_dashboard_reader_grants.js';

export const migrations: Readonly<Record<string, Migration>> = Object.freeze({
  '0001_initial': m0001,
  '0002_dashboard_views': m0002,
  '0003_api_keys': m0003,
  '0004_upstream_engine': m0004,
  '0005_dashboard_reader_grants': m0005,
  '0006_job_daily_rollups': m0006,
  '0007_cache_lifecycle': m0007,
  '0008_product_stac_metadata': m0008,
  '0009_job_callbacks_cancel': m0009,
});
