/**
 * What a STAC asset says about a Sentinel-2 band file: its STAC 1.1 `bands` (name, EO common name,
 * centre wavelength and full width at half maximum in micrometres), ground sample distance, data
 * type and nodata value.
 *
 * Sources:
 * - wavelengths and bandwidths: ESA, Sentinel-2 MSI User Guide, "Radiometric Resolutions" / the
 *   MSI spectral response (S2-PDGS-TAS-DI-PSD), rounded as the Sentinel-2 STAC items of stactools
 *   (stactools-packages/sentinel2) and Earth Search publish them — mission-independent values
 *   (S2A and S2B differ by at most a few nm);
 * - common names: the EO extension v2.0.0, "Common Band Names"
 *   (https://github.com/stac-extensions/eo/blob/v2.0.0/README.md#common-band-names);
 * - `bands`, `gsd`, `data_type`, `nodata`: STAC 1.1 common metadata
 *   (https://github.com/radiantearth/stac-spec/blob/v1.1.0/commons/common-metadata.md);
 * - data types: the Products Specification (PSD): reflectance bands, AOT and WVP are 15-bit
 *   unsigned JPEG2000 (uint16), SCL and TCI 8-bit (uint8); 0 is NO_DATA in every file.
 */
import { resolveBand, type ProductLevel, type Resolution } from '@scenecache/core';

/** One band of an asset (STAC 1.1 `bands[]`, with EO extension v2.0.0 fields). */
export type StacBand = {
  readonly name: string;
  readonly description?: string;
  readonly 'eo:common_name'?: string;
  /** Micrometres. */
  readonly 'eo:center_wavelength'?: number;
  /** Micrometres. */
  readonly 'eo:full_width_half_max'?: number;
};

/** What an asset of one band file carries besides its href and file facts. */
export interface BandAssetFacts {
  /** `Red (B04), 10 m`. */
  readonly title: string;
  readonly bands: StacBand[];
  /** The file's resolution: its grid's pixel size (metres), the asset's `gsd`. */
  readonly resolution: Resolution;
  readonly dataType: 'uint8' | 'uint16';
  readonly nodata: number;
}

interface SpectralBand {
  readonly commonName: string;
  /** Micrometres. */
  readonly center: number;
  /** Micrometres. */
  readonly fwhm: number;
  readonly title: string;
}

/** The 13 MSI bands. */
const SPECTRAL: Readonly<Record<string, SpectralBand>> = {
  B01: { commonName: 'coastal', center: 0.443, fwhm: 0.027, title: 'Coastal aerosol' },
  B02: { commonName: 'blue', center: 0.49, fwhm: 0.098, title: 'Blue' },
  B03: { commonName: 'green', center: 0.56, fwhm: 0.045, title: 'Green' },
  B04: { commonName: 'red', center: 0.665, fwhm: 0.038, title: 'Red' },
  B05: { commonName: 'rededge071', center: 0.704, fwhm: 0.019, title: 'Red edge 1' },
  B06: { commonName: 'rededge075', center: 0.74, fwhm: 0.018, title: 'Red edge 2' },
  B07: { commonName: 'rededge078', center: 0.783, fwhm: 0.028, title: 'Red edge 3' },
  B08: { commonName: 'nir', center: 0.842, fwhm: 0.145, title: 'NIR' },
  B8A: { commonName: 'nir08', center: 0.865, fwhm: 0.033, title: 'NIR narrow' },
  B09: { commonName: 'nir09', center: 0.945, fwhm: 0.026, title: 'Water vapour' },
  B10: { commonName: 'cirrus', center: 1.3735, fwhm: 0.075, title: 'SWIR cirrus' },
  B11: { commonName: 'swir16', center: 1.61, fwhm: 0.143, title: 'SWIR 1.6 µm' },
  B12: { commonName: 'swir22', center: 2.19, fwhm: 0.242, title: 'SWIR 2.2 µm' },
};

/** The L2A products that are not spectral bands. */
const PRODUCTS: Readonly<Record<string, { readonly title: string; readonly description: string; readonly dataType: 'uint8' | 'uint16' }>> = {
  SCL: { title: 'Scene classification', description: 'Scene classification map (Sen2Cor classes 0–11)', dataType: 'uint8' },
  AOT: { title: 'Aerosol optical thickness', description: 'Aerosol optical thickness at 550 nm (scaled by 1000)', dataType: 'uint16' },
  WVP: { title: 'Water vapour', description: 'Water vapour column (cm, scaled by 1000)', dataType: 'uint16' },
};

function spectralBand(name: string): StacBand {
  const s = SPECTRAL[name]!;
  return { name, 'eo:common_name': s.commonName, 'eo:center_wavelength': s.center, 'eo:full_width_half_max': s.fwhm };
}

/**
 * The asset facts of band `bandId` (canonical id: `B04`, `B04_20m`, `SCL`, `TCI`) of a product of
 * `level`; undefined for an id the band catalogue does not know at that level (the asset then
 * carries only its href and file facts).
 */
export function bandAssetFacts(level: ProductLevel, bandId: string): BandAssetFacts | undefined {
  let band;
  try {
    band = resolveBand(level, bandId);
  } catch {
    return undefined;
  }
  const res = band.resolution;
  if (band.name === 'TCI') {
    // True colour image: three 8-bit bands, red, green, blue (B04, B03, B02).
    return { title: `True colour image (B04, B03, B02), ${res} m`, bands: ['B04', 'B03', 'B02'].map(spectralBand), resolution: res, dataType: 'uint8', nodata: 0 };
  }
  const product = PRODUCTS[band.name];
  if (product) {
    return { title: `${product.title} (${band.name}), ${res} m`, bands: [{ name: band.name, description: product.description }], resolution: res, dataType: product.dataType, nodata: 0 };
  }
  const spectral = SPECTRAL[band.name];
  if (!spectral) return undefined;
  return { title: `${spectral.title} (${band.name}), ${res} m`, bands: [spectralBand(band.name)], resolution: res, dataType: 'uint16', nodata: 0 };
}
