/**
 * @scenecache/client — a typed client of the scenecache HTTP API, generated from the OpenAPI
 * document the API serves (`/docs/json`): the types in `openapi.ts` (openapi-typescript, written by
 * `npm run client:generate`), requests by openapi-fetch.
 *
 * Glossary:
 * - job: one download request of a tenant for some bands of one product (`job_id`).
 * - final status: `completed`, `failed` or `cancelled` — the job changes no more.
 * - long-poll: `GET /v1/downloads/{id}?wait=S`, a request the server holds until the job ends or
 *   S seconds pass.
 * - cursor: the `next_cursor` of a page of `GET /v1/downloads`, passed back for the next page.
 */
export * from './scenecache-client.js';
export * from './api-error.js';
export * from './download-types.js';
export type { paths, components, operations } from './openapi.js';
