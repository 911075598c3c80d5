import { resolveBand, tenantBucketName, validateDownload, ValidationError } from '@scenecache/core';

const L1C = 'S2A_MSIL1C_20210908T042701_N0301_R133_T46RER_20210908T070248';
const L2A = 'S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454';
const PREFIX = 'scenecache-tenant-';

function codeOf(fn: () => unknown): { code: string; field: string | undefined } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return { code: (err as ValidationError).code, field: (err as ValidationError).field };
  }
  throw new Error('expected a ValidationError');
}

describe('tenant ids are slugs that make valid bucket names', () => {
  it.each(['acme', 'a1', 'acme-agri', '0', 'x'.repeat(63 - PREFIX.length)])('accepts %s', (id) => {
    expect(tenantBucketName(id, PREFIX)).toBe(`${PREFIX}${id}`);
  });
  it.each([
    ['upper case', 'Acme'],
    ['dots', 'acme.corp'],
    ['too long', 'x'.repeat(64 - PREFIX.length)],
    ['xn-- prefix', 'xn--acme'],
    ['sthree- prefix', 'sthree-acme'],
    ['leading hyphen', '-acme'],
    ['trailing hyphen', 'acme-'],
    ['underscore', 'acme_agri'],
    ['empty', ''],
    ['slash', 'acme/agri'],
  ])('rejects %s', (_why, id) => {
    expect(codeOf(() => tenantBucketName(id, PREFIX))).toEqual({ code: 'invalid_tenant_id', field: 'tenant_id' });
  });
});

describe('bands per level', () => {
  it('resolves native and explicit L2A resolutions to canonical ids', () => {
    expect(resolveBand('L2A', 'B04').id).toBe('B04');
    expect(resolveBand('L2A', 'B04_10m').id).toBe('B04');
    expect(resolveBand('L2A', 'B04_20m')).toMatchObject({ id: 'B04_20m', folder: 'IMG_DATA/R20m/', fileSuffix: '_B04_20m.jp2' });
    expect(resolveBand('L2A', 'SCL')).toMatchObject({ id: 'SCL', resolution: 20 });
    expect(resolveBand('L1C', 'B8A')).toMatchObject({ id: 'B8A', folder: 'IMG_DATA/', fileSuffix: '_B8A.jp2' });
  });
  it.each([
    ['L1C', 'SCL', 'band_not_in_level'],
    ['L1C', 'B04_20m', 'band_not_in_level'],
    ['L2A', 'B10', 'band_not_in_level'],
    ['L2A', 'B01_10m', 'band_not_in_level'],
    ['L2A', 'B13', 'unknown_band'],
    ['L1C', 'b04', 'unknown_band'],
    ['L1C', '', 'unknown_band'],
  ] as const)('%s %s → %s', (level, band, code) => {
    expect(codeOf(() => resolveBand(level, band)).code).toBe(code);
  });
});

describe('validateDownload', () => {
  it('defaults to the four 10 m bands and strips .SAFE', () => {
    const v = validateDownload({ tenant_id: 'acme', scene_id: `${L2A}.SAFE` }, PREFIX);
    expect(v.product.sceneId).toBe(L2A);
    expect(v.bands.map((b) => b.id)).toEqual(['B02', 'B03', 'B04', 'B08']);
    expect(v.tenantBucket).toBe(`${PREFIX}acme`);
  });
  it('rejects two names of the same file, naming the field', () => {
    expect(codeOf(() => validateDownload({ tenant_id: 'acme', scene_id: L2A, bands: ['B04', 'B02', 'B04_10m'] }, PREFIX))).toEqual({ code: 'duplicate_band', field: 'bands[2]' });
  });
  it('names the offending band by index', () => {
    expect(codeOf(() => validateDownload({ tenant_id: 'acme', scene_id: L1C, bands: ['B04', 'SCL'] }, PREFIX))).toEqual({ code: 'band_not_in_level', field: 'bands[1]' });
  });
});
