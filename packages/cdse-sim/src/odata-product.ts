/**
 * A product as the OData catalogue describes it. Shape copied from the real search results in
 * fixtures `eodag_cop_dataspace_odata_search_S2_L1C.json` (2024 format: MD5 + BLAKE3 checksums,
 * `EvictionDate` 9999-12-31, typed `Attributes`) and `ftep_cdse_odata_products_search_S2_L2A.json`
 * (L2A attribute names), documented at documentation.dataspace.copernicus.eu/APIs/OData.html.
 *
 * Values the sim cannot know are derived deterministically from the name: the checksums are of a
 * zip the sim never builds (placeholders of the right form), dates follow the discriminator
 * (generation time), the footprint approximates the tile (tile-footprint.ts), and cloud cover is the
 * one the product's served metadata files state (metadata-identity.ts: a stable pseudo-random
 * percentage, or the fixture's real value for the fixture's own product).
 */
import { createHash } from 'node:crypto';
import type { ProductLayout } from './product-catalogue.js';
import { absoluteOrbitOf, compactToMs } from './safe-template.js';
import { geoJsonFootprint, odataFootprint, tileFootprint } from './tile-footprint.js';

/** OData timestamps carry microseconds: `2023-08-23T09:26:23.105134Z`. */
function odataTime(ms: number, micros = 0): string {
  return `${new Date(ms).toISOString().slice(0, 23)}${String(micros).padStart(3, '0')}Z`;
}

function digest(algorithm: string, text: string): string {
  return createHash(algorithm).update(text).digest('hex');
}

/** The `/eodata/...` S3 path; reprocessed N0500 products live in `L1C_N0500` / `L2A_N0500` (as in the eodag fixture). */
export function s3PathOf(layout: ProductLayout): string {
  const p = layout.product;
  const [y, m, d] = p.sensingDate.split('-');
  const collection = p.baseline === 'N0500' ? `${p.level}_N0500` : p.level;
  return `/eodata/Sentinel-2/MSI/${collection}/${y}/${m}/${d}/${p.safeName}`;
}

type Attribute = { '@odata.type': string; Name: string; Value: string | number; ValueType: string };

function attributes(layout: ProductLayout, cloudCover: number): Attribute[] {
  const p = layout.product;
  const str = (Name: string, Value: string): Attribute => ({ '@odata.type': '#OData.CSC.StringAttribute', Name, Value, ValueType: 'String' });
  const int = (Name: string, Value: number): Attribute => ({ '@odata.type': '#OData.CSC.IntegerAttribute', Name, Value, ValueType: 'Integer' });
  const time = (Name: string, ms: number): Attribute => ({ '@odata.type': '#OData.CSC.DateTimeOffsetAttribute', Name, Value: odataTime(ms), ValueType: 'DateTimeOffset' });
  const version = `${p.baseline.slice(1, 3)}.${p.baseline.slice(3)}`; // N0510 -> 05.10
  const abs = absoluteOrbitOf(p);
  const type = p.level === 'L1C' ? 'S2MSI1C' : 'S2MSI2A';
  const sensing = p.sensingTime.getTime() + 24; // datatake starts carry .024 s in the fixtures
  return [
    str('origin', 'ESA'),
    str('tileId', p.tile),
    { '@odata.type': '#OData.CSC.DoubleAttribute', Name: 'cloudCover', Value: cloudCover, ValueType: 'Double' },
    str('datastripId', `${p.mission}_OPER_MSI_${p.level}_DS_${p.mission.slice(1)}PS_${p.discriminator}_S${p.sensingTime.toISOString().slice(0, 19).replace(/[-:]/g, '')}_N${version}`),
    int('orbitNumber', abs),
    time('processingDate', compactToMs(p.discriminator)),
    str('productGroupId', `G${p.mission}_${p.sensingTime.toISOString().slice(0, 19).replace(/[-:]/g, '')}_${String(abs).padStart(6, '0')}_N${version}`),
    str('operationalMode', 'INS-NOBS'),
    str('processingLevel', type),
    str('processorVersion', version),
    str('platformShortName', 'SENTINEL-2'),
    str('instrumentShortName', 'MSI'),
    int('relativeOrbitNumber', p.relativeOrbit),
    str('platformSerialIdentifier', p.mission.slice(2)),
    str('productType', type),
    time('beginningDateTime', sensing),
    time('endingDateTime', sensing),
  ];
}

/**
 * The catalogue entity of a product (`value[i]` of a search, or `Products(<Id>)`).
 * @param expand - the `$expand` names requested (`Attributes`, `Assets`).
 */
export function odataProduct(layout: ProductLayout, expand: readonly string[] = []): Record<string, unknown> {
  const p = layout.product;
  const seed = createHash('sha256').update(p.safeName).digest();
  const generated = compactToMs(p.discriminator);
  // Products reach the catalogue about an hour after generation; micro-second parts vary per product.
  const origin = generated + 3_600_000 + seed.readUInt16BE(0) * 10;
  const published = origin + 600_000 + seed.readUInt16BE(2) * 10;
  const micros = (i: number): number => seed[i]! * 3;
  const ring = tileFootprint(p.tile);
  const sensing = p.sensingTime.getTime() + 24;
  const entity: Record<string, unknown> = {
    '@odata.mediaContentType': 'application/octet-stream',
    Id: layout.id,
    Name: p.safeName,
    ContentType: 'application/octet-stream',
    ContentLength: layout.contentLength,
    OriginDate: odataTime(origin, micros(4)),
    PublicationDate: odataTime(published, micros(5)),
    ModificationDate: odataTime(published + 5_000, micros(6)),
    Online: true,
    EvictionDate: '9999-12-31T23:59:59.999999Z',
    S3Path: s3PathOf(layout),
    Checksum: [
      { Value: digest('md5', `zip:${p.safeName}`), Algorithm: 'MD5', ChecksumDate: odataTime(published + 6_000, micros(7)) },
      { Value: digest('sha256', `blake3:${p.safeName}`), Algorithm: 'BLAKE3', ChecksumDate: odataTime(published + 6_500, micros(8)) },
    ],
    ContentDate: { Start: odataTime(sensing), End: odataTime(sensing) },
    Footprint: odataFootprint(ring),
    GeoFootprint: geoJsonFootprint(ring),
  };
  if (expand.includes('Attributes')) entity.Attributes = attributes(layout, layout.identity.cloudCover);
  if (expand.includes('Assets')) entity.Assets = [];
  return entity;
}
