/** Builders of repository inputs for the db tests. */
import type { CachedBand, RegisterBandsInput } from '@scenecache/db';

export const SCENE = 'S2B_MSIL2A_20241123T224759_N0511_R101_T03VUL_20241123T230829';

/** A cached band entry of `size` bytes. */
export function band(id: string, size: number, sceneId = SCENE): CachedBand {
  return {
    key: `${sceneId}/${id}.jp2`,
    size,
    sha3_256: id.toLowerCase().padEnd(64, '0'),
    etag: `"${id}-etag"`,
    safe_path: `GRANULE/L2A_T03VUL/IMG_DATA/R10m/T03VUL_20241123T224759_${id}_10m.jp2`,
    registered_at: '2024-11-24T00:00:00.000Z',
  };
}

/** registerBands input for `sceneId` with the given bands (id → size in bytes). */
export function registration(sizes: Record<string, number>, sceneId = SCENE): RegisterBandsInput {
  return {
    sceneId,
    storageBucket: 'scenecache-global',
    storagePath: `${sceneId}/`,
    sensingDate: '2024-11-23',
    level: 'L2A',
    tile: '03VUL',
    mission: 'S2B',
    cdseProductId: '0f5b4b4e-6d5c-4a52-9d8e-3a2d3c1b2a10',
    bands: Object.fromEntries(Object.entries(sizes).map(([id, size]) => [id, band(id, size, sceneId)])),
  };
}
