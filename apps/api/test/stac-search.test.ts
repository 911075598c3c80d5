// Pure: the STAC search parameters (bbox, datetime, token), item bbox across the antimeridian,
// the SHA3-256 multihash, band facts, and the STAC_SIGNED_URL_TTL_SECONDS setting.
import { loadSettings, ScenecacheError, ValidationError } from '@scenecache/core';
import { bandAssetFacts } from '../src/stac/stac-bands.js';
import { geometryBbox, sha3Multihash } from '../src/stac/stac-item.js';
import { decodeSearchToken, encodeSearchToken, parseBbox, parseDatetimeFilter, parseStacSearch, STAC_PAGE_MAX } from '../src/stac/stac-search.js';

/** The ValidationError's field, or the unexpected outcome. */
function fieldOf(call: () => unknown): string | undefined {
  try {
    call();
  } catch (err) {
    if (err instanceof ValidationError) return err.field;
    throw err;
  }
  return 'no error';
}

describe('bbox', () => {
  it('4 or 6 numbers; west > east splits at the antimeridian', () => {
    expect(parseBbox('1,2,3,4')).toEqual([[1, 2, 3, 4]]);
    expect(parseBbox([1, 2, -5, 3, 4, 100])).toEqual([[1, 2, 3, 4]]);
    expect(parseBbox('170,-20,-170,-10')).toEqual([[170, -20, 180, -10], [-180, -20, -170, -10]]);
  });

  it('refuses what is not a box', () => {
    for (const bad of ['1,2,3', '1,2,3,4,5', 'a,1,2,3', '1,,2,3', '0,50,1,40', '0,-91,1,0', '-181,0,1,1', '0,0,181,1']) expect(fieldOf(() => parseBbox(bad))).toBe('bbox');
  });
});

describe('datetime', () => {
  it('an instant, closed and half-open intervals; time zones and fractions kept', () => {
    expect(parseDatetimeFilter('2024-03-24T10:16:49.024Z')).toEqual({ start: '2024-03-24T10:16:49.024Z', end: '2024-03-24T10:16:49.024Z' });
    expect(parseDatetimeFilter('2024-03-24t10:16:49+02:00')).toEqual({ start: '2024-03-24T10:16:49+02:00', end: '2024-03-24T10:16:49+02:00' });
    expect(parseDatetimeFilter('2024-01-01T00:00:00Z/2024-02-01T00:00:00Z')).toEqual({ start: '2024-01-01T00:00:00Z', end: '2024-02-01T00:00:00Z' });
    expect(parseDatetimeFilter('../2024-02-01T00:00:00Z')).toEqual({ start: undefined, end: '2024-02-01T00:00:00Z' });
    expect(parseDatetimeFilter('2024-01-01T00:00:00Z/')).toEqual({ start: '2024-01-01T00:00:00Z', end: undefined });
  });

  it('refuses dates without a zone, impossible dates, both ends open, reversed intervals', () => {
    for (const bad of ['2024-03-24', '2024-03-24T10:16:49', '2024-02-30T00:00:00Z', '2024-01-01T24:00:00Z', '../..', '/', '2024-02-01T00:00:00Z/2024-01-01T00:00:00Z', 'a/b/c', 'now']) {
      expect({ bad, field: fieldOf(() => parseDatetimeFilter(bad)) }).toEqual({ bad, field: 'datetime' });
    }
  });
});

describe('paging token and limit', () => {
  it('a token carries the keyset position; anything else is refused', () => {
    const position = { sensedAt: '2024-03-24T10:16:49.024000Z', sceneId: 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035' };
    expect(decodeSearchToken(encodeSearchToken(position))).toEqual(position);
    for (const bad of ['', 'x', '!!!', Buffer.from('["2024-03-24", "a"]').toString('base64url'), Buffer.from('{}').toString('base64url')]) expect(fieldOf(() => decodeSearchToken(bad))).toBe('token');
  });

  it('limit 1–10000; pages hold at most 1000', () => {
    const view = { kind: 'global' } as const;
    expect(parseStacSearch({}, view).pageSize).toBe(10);
    expect(parseStacSearch({ limit: 10_000 }, view).pageSize).toBe(STAC_PAGE_MAX);
    for (const limit of [0, 10_001, 1.5]) expect(fieldOf(() => parseStacSearch({ limit }, view))).toBe('limit');
    expect(fieldOf(() => parseStacSearch({ collections: 'sentinel-2-l2a,landsat' }, view))).toBe('collections');
    expect(parseStacSearch({ collections: ['sentinel-2-l1c', 'sentinel-2-l1c'] }, view).filter.levels).toEqual(['L1C']);
  });
});

describe('items', () => {
  it('bbox of a footprint split at the antimeridian has west > east (the hand-made T01KAB item)', () => {
    const split = {
      type: 'MultiPolygon' as const,
      coordinates: [
        [[[180, -17.25], [180, -16.26], [179.2586, -16.2478], [179.2392, -17.2382], [180, -17.25]]],
        [[[-180, -16.26], [-180, -17.25], [-179.72957, -17.25485], [-179.71545, -16.2634], [-180, -16.26]]],
      ],
    };
    expect(geometryBbox(split)).toEqual([179.2392, -17.25485, -179.71545, -16.2478]);
    expect(geometryBbox({ type: 'Polygon', coordinates: [[[8, 45], [9, 45], [9, 46], [8, 46], [8, 45]]] })).toEqual([8, 45, 9, 46]);
  });

  it('file:checksum is the multihash of the SHA3-256: 0x16 0x20 + the digest, lower-case', () => {
    expect(sha3Multihash('AC33C0ADE3A1EA5A15509A8F33564332509A455FBD136F5A2A53F0A502FB76DF')).toBe('1620ac33c0ade3a1ea5a15509a8f33564332509a455fbd136f5a2a53f0a502fb76df');
    expect(sha3Multihash('abc')).toBeUndefined();
  });

  it('band facts: resolution from the band id, wavelengths in µm, TCI as three bands', () => {
    expect(bandAssetFacts('L2A', 'B04_20m')).toMatchObject({ resolution: 20, bands: [{ name: 'B04', 'eo:center_wavelength': 0.665 }] });
    expect(bandAssetFacts('L1C', 'B10')).toMatchObject({ resolution: 60, bands: [{ name: 'B10', 'eo:common_name': 'cirrus' }] });
    expect(bandAssetFacts('L2A', 'SCL')).toMatchObject({ resolution: 20, dataType: 'uint8' });
    expect(bandAssetFacts('L2A', 'TCI_60m')?.bands.map((b) => b.name)).toEqual(['B04', 'B03', 'B02']);
    expect(bandAssetFacts('L1C', 'SCL')).toBeUndefined();
  });
});

describe('STAC_SIGNED_URL_TTL_SECONDS', () => {
  it('defaults to 3600 s and accepts 1 s to 7 days (SigV4 presigning allows no more)', () => {
    expect(loadSettings({}).stacSignedUrlTtlSeconds).toBe(3_600);
    expect(loadSettings({ STAC_SIGNED_URL_TTL_SECONDS: '604800' }).stacSignedUrlTtlSeconds).toBe(604_800);
    for (const bad of ['0', '604801', 'soon']) {
      expect(() => loadSettings({ STAC_SIGNED_URL_TTL_SECONDS: bad })).toThrow(ScenecacheError);
      expect(() => loadSettings({ STAC_SIGNED_URL_TTL_SECONDS: bad })).toThrow(/STAC_SIGNED_URL_TTL_SECONDS/);
    }
  });
});
