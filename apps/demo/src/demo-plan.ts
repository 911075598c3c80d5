/**
 * What the demo asks for: 8 tenants × 6 real Sentinel-2 products (3 L1C, 3 L2A) from
 * fixtures/cdse/sentinel2_products.tsv, each tenant with its own band set so some bands are shared
 * between tenants and some are not.
 */
import { readFileSync } from 'node:fs';
import { parseProductName, resolveBand, type ProductLevel } from '@scenecache/core';

/** Each tenant's bands per product level. */
export const TENANT_BANDS: Readonly<Record<string, Readonly<Record<ProductLevel, readonly string[]>>>> = Object.freeze({
  'acme-agri': { L1C: ['B02', 'B03', 'B04', 'B08'], L2A: ['B02', 'B03', 'B04', 'B08'] },
  'blue-water': { L1C: ['B02', 'B03', 'B04'], L2A: ['B02', 'B03', 'B04', 'SCL'] },
  'canopy-watch': { L1C: ['B04', 'B08'], L2A: ['B04', 'B08'] },
  'delta-insure': { L1C: ['B04', 'B8A', 'B11'], L2A: ['B04', 'B8A', 'B11'] },
  'ember-fire': { L1C: ['B8A', 'B12'], L2A: ['B8A', 'B12', 'SCL'] },
  'frost-hydro': { L1C: ['B03', 'B11'], L2A: ['B03', 'B11', 'SCL'] },
  'geo-maps': { L1C: ['TCI'], L2A: ['TCI'] },
  'harvest-ai': { L1C: ['B04', 'B08', 'B8A'], L2A: ['B04', 'B08', 'B05'] },
});

/** One request of the demo burst. */
export interface DemoRequest {
  tenant_id: string;
  scene_id: string;
  bands: string[];
}

/**
 * Pick `perLevel` products of each level from the fixture list (distinct tiles, newest first) and
 * cross them with every tenant.
 * @param tsvPath - path of sentinel2_products.tsv.
 */
export function demoRequests(tsvPath: string, perLevel = 3): DemoRequest[] {
  const names = readFileSync(tsvPath, 'utf8').trim().split('\n').slice(1).map((l) => l.split('\t')[0]!);
  const products = (['L1C', 'L2A'] as const).flatMap((level) => {
    const seenTiles = new Set<string>();
    return names
      .map((n) => parseProductName(n))
      .filter((p) => p.level === level)
      .sort((a, b) => b.sensingTime.getTime() - a.sensingTime.getTime())
      .filter((p) => !seenTiles.has(p.tile) && seenTiles.add(p.tile))
      .slice(0, perLevel);
  });
  return products.flatMap((p) =>
    Object.entries(TENANT_BANDS).map(([tenant, bands]) => ({ tenant_id: tenant, scene_id: p.sceneId, bands: [...bands[p.level]] })),
  );
}

/** Distinct (product, band) pairs a burst asks for: the floor of upstream file downloads. */
export function distinctPairs(requests: readonly DemoRequest[]): Set<string> {
  const pairs = new Set<string>();
  for (const r of requests) {
    const level = parseProductName(r.scene_id).level;
    for (const b of r.bands) pairs.add(`${r.scene_id}/${resolveBand(level, b).id}`);
  }
  return pairs;
}
