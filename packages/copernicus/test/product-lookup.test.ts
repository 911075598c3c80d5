import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { UpstreamError } from '@scenecache/core';
import { parseProduct, parseProductSearch, productSearchUrl } from '../src/product-lookup.js';

const fixture = (name: string): unknown =>
  JSON.parse(readFileSync(fileURLToPath(new URL(`../../../fixtures/cdse/${name}`, import.meta.url)), 'utf8'));

const L1C = 'S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505.SAFE';
const L1C_2 = 'S2A_MSIL1C_20200808T010311_N0500_R045_T55PBR_20230413T212505.SAFE';
const L2A = 'S2B_MSIL2A_20230209T055009_N0509_R048_T43SBB_20230209T084058.SAFE';

describe('parseProductSearch on real CDSE answers', () => {
  it('reads the 2024-format L1C search (MD5 + BLAKE3 checksums)', () => {
    const answer = fixture('eodag_cop_dataspace_odata_search_S2_L1C.json') as { value: Array<{ Name: string; GeoFootprint: unknown }> };
    const p = parseProductSearch(answer, L1C);
    expect(p).toEqual({
      Id: '05edf2bb-d103-49f1-a677-9e474138d84f',
      Name: L1C,
      ContentLength: 224105657,
      Online: true,
      S3Path: `/eodata/Sentinel-2/MSI/L1C_N0500/2020/08/08/${L1C}`,
      Checksum: [
        { Algorithm: 'MD5', Value: '923ac4992d90b57d41e7ace4d9d90757', ChecksumDate: '2023-08-23T09:26:29.109555Z' },
        { Algorithm: 'BLAKE3', Value: '2f787caed527ffeb3245594a465abd127da5ee7eaeb974f9a9ab4342f2fba7cf', ChecksumDate: '2023-08-23T09:26:29.570886Z' },
      ],
      ContentDate: { Start: '2020-08-08T01:03:11.024000Z', End: '2020-08-08T01:03:11.024000Z' },
      GeoFootprint: answer.value.find((v) => v.Name === L1C)!.GeoFootprint,
    });
    expect(Object.isFrozen(p)).toBe(true);
  });

  it('picks the product with the requested name, not simply value[0]', () => {
    const p = parseProductSearch(fixture('eodag_cop_dataspace_odata_search_S2_L1C.json'), L1C_2);
    expect(p.Id).toBe('37fc6ed2-24b4-4b28-8df7-91444921f867');
    expect(p.ContentLength).toBe(172342246);
  });

  it('reads the early-2023 L2A search (empty Checksum, empty EvictionDate)', () => {
    const p = parseProductSearch(fixture('ftep_cdse_odata_products_search_S2_L2A.json'), L2A);
    expect(p.Id).toBe('0c104c0f-0508-5f5d-9997-1b61ea3b20d6');
    expect(p.ContentLength).toBe(87761903);
    expect(p.Checksum).toEqual([]);
    expect(p.Online).toBe(true);
    expect(p.S3Path).toBe(`/eodata/Sentinel-2/MSI/L2A/2023/02/09/${L2A}`);
    expect(p.ContentDate.Start).toBe('2023-02-09T05:50:09.024Z');
  });

  it('an empty value is product_not_found (not retryable, HTTP 404)', () => {
    const err = catchError(() => parseProductSearch({ '@odata.context': '$metadata#Products', value: [] }, L1C));
    expect(err).toBeInstanceOf(UpstreamError);
    expect(err).toMatchObject({ code: 'product_not_found', retryable: false, httpStatus: 404 });
  });

  it('products of other names only are product_not_found', () => {
    const err = catchError(() => parseProductSearch(fixture('eodag_cop_dataspace_odata_search_S2_L1C.json'), L2A));
    expect(err).toMatchObject({ code: 'product_not_found', retryable: false });
    expect((err as Error).message).toContain('none named');
  });

  it.each([
    ['no value', {}, 'value is not an array'],
    ['Id missing', { value: [{ Name: L1C, ContentLength: 1, Online: true, S3Path: '/x', ContentDate: { Start: 'a', End: 'b' } }] }, 'value[0].Id'],
    ['ContentLength a string', { value: [{ Id: 'x', Name: L1C, ContentLength: '1', Online: true, S3Path: '/x', ContentDate: { Start: 'a', End: 'b' } }] }, 'ContentLength'],
    ['Online missing', { value: [{ Id: 'x', Name: L1C, ContentLength: 1, S3Path: '/x', ContentDate: { Start: 'a', End: 'b' } }] }, 'Online'],
    ['Checksum not a list', { value: [{ Id: 'x', Name: L1C, ContentLength: 1, Online: true, S3Path: '/x', Checksum: {}, ContentDate: { Start: 'a', End: 'b' } }] }, 'Checksum'],
    ['ContentDate missing', { value: [{ Id: 'x', Name: L1C, ContentLength: 1, Online: true, S3Path: '/x' }] }, 'ContentDate'],
  ])('a malformed answer (%s) is upstream_unavailable, not retryable, naming the field', (_, body, field) => {
    const err = catchError(() => parseProductSearch(body, L1C));
    expect(err).toMatchObject({ code: 'upstream_unavailable', retryable: false });
    expect((err as Error).message).toContain(field);
  });

  it('keeps the GeoJSON footprint of the 2024 answer format, and has none for early-2023 answers', () => {
    const eodag = fixture('eodag_cop_dataspace_odata_search_S2_L1C.json') as { value: Array<{ GeoFootprint: { type: string; coordinates: unknown } }> };
    const product = parseProduct(eodag.value[0]);
    expect(product.GeoFootprint).toEqual(eodag.value[0]!.GeoFootprint);
    expect(product.GeoFootprint?.type).toBe('Polygon');
    const ftep = fixture('ftep_cdse_odata_products_search_S2_L2A.json') as { value: unknown[] };
    expect(parseProduct(ftep.value[0]).GeoFootprint).toBeUndefined();
    expect(parseProduct({ ...eodag.value[0], GeoFootprint: { type: 'Point', coordinates: [1, 2] } }).GeoFootprint).toBeUndefined();
  });

  it('parseProduct accepts every product of the S1 paging fixture (same entity type)', () => {
    const page = fixture('cdsetool_odata_products_page1_S1_expand_attributes.json') as { value: unknown[] };
    expect(page.value.length).toBeGreaterThan(0);
    for (const raw of page.value) expect(parseProduct(raw).Id).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('productSearchUrl', () => {
  it('percent-encodes the filter', () => {
    expect(productSearchUrl('https://catalogue.dataspace.copernicus.eu/odata/v1/', L2A)).toBe(
      `https://catalogue.dataspace.copernicus.eu/odata/v1/Products?$filter=Name%20eq%20'${L2A}'`,
    );
  });

  it('doubles quotes, as OData string literals require', () => {
    const url = new URL(productSearchUrl('http://h/odata/v1', "a'b"));
    expect(url.searchParams.get('$filter')).toBe("Name eq 'a''b'");
  });
});

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}
