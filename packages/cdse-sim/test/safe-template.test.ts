// Pure: a product's manifest is the fixture of its level with the product's identity substituted.
import { parseProductName, parseSafeManifest } from '@scenecache/core';
import { DEFAULT_FIXTURES_DIR } from '../src/options.js';
import { loadSafeTemplates, renderSafeManifest } from '../src/safe-template.js';

describe('SAFE templates from the fixture manifests', () => {
  it('derive each fixture identity, with the granule time a few seconds off the sensing time', async () => {
    const t = await loadSafeTemplates(DEFAULT_FIXTURES_DIR);
    expect(t.L1C).toMatchObject({ tile: '17UPV', sensing: '20241209T162609', granuleTime: '20241209T162603', granuleOffsetSeconds: -6, processing: '20241209T195414', absoluteOrbit: '040535', centre: '2BPS' });
    expect(t.L2A).toMatchObject({ tile: '01KAB', sensing: '20230821T221941', granuleTime: '20230821T221944', granuleOffsetSeconds: 3, processing: '20230822T021825', absoluteOrbit: '042640', centre: '2APS' });
  });

  it.each([
    ['S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505', 'L1C'],
    ['S2C_MSIL2A_20250102T101419_N0511_R022_T32TNR_20250102T140055', 'L2A'],
  ] as const)('%s: no trace of the fixture product remains', async (name, level) => {
    const t = await loadSafeTemplates(DEFAULT_FIXTURES_DIR);
    const p = parseProductName(name);
    const xml = renderSafeManifest(p, t[level]);
    for (const token of [t[level].tile, t[level].sensing, t[level].granuleTime, t[level].processing, `A${t[level].absoluteOrbit}`, `DS_${t[level].centre}`]) {
      expect(xml).not.toContain(token);
    }
    const files = parseSafeManifest(xml);
    expect(files.length).toBe(parseSafeManifest(t[level].xml).length);
    const sensing = name.slice(11, 26);
    for (const f of files.filter((x) => x.path.includes('/IMG_DATA/'))) {
      expect(f.path).toMatch(new RegExp(`^GRANULE/${level}_T${p.tile}_A\\d{6}_\\d{8}T\\d{6}/IMG_DATA/(R\\d0m/)?T${p.tile}_${sensing}_`));
    }
    expect(xml).toContain(`<safe:number>${p.mission.slice(1)}</safe:number>`);
    expect(xml).toContain(`<safe:startTime>${p.sensingTime.toISOString().slice(0, 19)}.024Z</safe:startTime>`);
  });
});
