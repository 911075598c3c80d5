import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseProductName, sceneStoragePath, ValidationError } from '@scenecache/core';

const tsv = fileURLToPath(new URL('../../../fixtures/cdse/sentinel2_products.tsv', import.meta.url));
const rows = readFileSync(tsv, 'utf8')
  .trim()
  .split('\n')
  .slice(1)
  .map((line) => line.split('\t'))
  .map(([name, level, platform, tile, sensingStart]) => ({ name: name!, level: level!, platform: platform!, tile: tile!, sensingStart: sensingStart! }));

describe('parseProductName over every real name in the fixtures', () => {
  it('has the 65 fixture names', () => {
    expect(rows).toHaveLength(65);
  });

  it.each(rows)('$name', ({ name, level, platform, tile, sensingStart }) => {
    for (const given of [name, `${name}.SAFE`]) {
      const p = parseProductName(given);
      expect(p.sceneId).toBe(name);
      expect(p.safeName).toBe(`${name}.SAFE`);
      expect(p.level).toBe(level);
      expect(p.mission).toBe(platform);
      expect(p.tile).toBe(tile);
      expect(p.sensingTime.toISOString().replace('.000Z', 'Z')).toBe(sensingStart);
      expect(p.sensingDate).toBe(sensingStart.slice(0, 10));
      expect(sceneStoragePath(p)).toBe(`sentinel-2/${level}/${tile}/${sensingStart.slice(0, 4)}/${sensingStart.slice(5, 7)}/${sensingStart.slice(8, 10)}/${name}`);
    }
  });
});

const GOOD = 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035';

describe('parseProductName rejects invalid names', () => {
  it.each([
    ['empty', ''],
    ['lower case', GOOD.toLowerCase()],
    ['truncated', GOOD.slice(0, 40)],
    ['Sentinel-1', 'S1A_IW_GRDH_1SDV_20240324T101649_20240324T101714_053123_067123_ABCD'],
    ['level 2AP', GOOD.replace('MSIL2A', 'MSIL2AP')],
    ['level 1B', GOOD.replace('MSIL2A', 'MSIL1B')],
    ['unknown mission S2E', GOOD.replace('S2B', 'S2E')],
    ['month 13', GOOD.replace('20240324T101649', '20241324T101649')],
    ['Feb 30', GOOD.replace('20240324T101649', '20240230T101649')],
    ['hour 25', GOOD.replace('T101649', 'T251649')],
    ['before the mission', GOOD.replace('20240324T101649', '20100324T101649')],
    ['orbit 0', GOOD.replace('R065', 'R000')],
    ['orbit 144', GOOD.replace('R065', 'R144')],
    ['zone 61', GOOD.replace('T32TNS', 'T61TNS')],
    ['latitude band I', GOOD.replace('T32TNS', 'T32INS')],
    ['path separator', `../${GOOD}`],
    ['dot-dot inside', GOOD.replace('_N0510', '/../N0510')],
    ['trailing slash', `${GOOD}/`],
    ['double .SAFE', `${GOOD}.SAFE.SAFE`],
    ['.zip suffix', `${GOOD}.zip`],
    ['whitespace', ` ${GOOD}`],
    ['newline', `${GOOD}\n`],
  ])('%s', (_why, name) => {
    let caught: unknown;
    try {
      parseProductName(name);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    expect((caught as ValidationError).code).toBe('invalid_product_name');
    expect((caught as ValidationError).field).toBe('scene_id');
    expect((caught as ValidationError).httpStatus).toBe(400);
  });
});
