/**
 * The committed client types (packages/client/src/openapi.ts) are what `npm run client:generate`
 * writes from the API's current routes: the document is built in-process from the API's sources
 * (no server, no Postgres or Redis) and rendered again in memory.
 */
import { readFileSync } from 'node:fs';
import { buildOpenApiDocument } from '../../../apps/api/src/openapi-document.js';
import { CLIENT_TYPES_FILE, GENERATE_COMMAND, renderClientTypes } from '../../../scripts/generate-client.mjs';

/** The first line where `a` and `b` differ (1-based), with both versions of it. */
function firstDifference(a: string, b: string): string {
  const left = a.split('\n');
  const right = b.split('\n');
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    if (left[i] !== right[i]) return `line ${i + 1}:\n  committed: ${left[i] ?? '(end of file)'}\n  generated: ${right[i] ?? '(end of file)'}`;
  }
  return 'no line differs';
}

describe('the generated client types', () => {
  it('are up to date with the API (else: run npm run client:generate)', async () => {
    const generated = await renderClientTypes(await buildOpenApiDocument());
    const committed = readFileSync(CLIENT_TYPES_FILE, 'utf8');
    if (committed !== generated) {
      throw new Error(`packages/client/src/openapi.ts is out of date with the API's OpenAPI document: run ${GENERATE_COMMAND} and commit the result.\nFirst difference, ${firstDifference(committed, generated)}`);
    }
  });

  it('render the same document to the same bytes', async () => {
    const document = await buildOpenApiDocument();
    expect(await renderClientTypes(document)).toBe(await renderClientTypes(document));
  });
});
