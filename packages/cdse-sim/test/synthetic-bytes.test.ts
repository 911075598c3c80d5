// Pure: synthetic bytes are deterministic and random-access; Range parsing; tile footprints.
import { createHash } from 'node:crypto';
import { parseRange } from '../src/http-util.js';
import { sha3OfSource, syntheticSource } from '../src/synthetic-bytes.js';
import { tileFootprint } from '../src/tile-footprint.js';

const all = (src: ReturnType<typeof syntheticSource>, start: number, end: number, chunk: number): Buffer =>
  Buffer.concat([...src.chunks(start, end, chunk)]);

describe('synthetic bytes', () => {
  const src = syntheticSource('S2B_MSIL1C_20241209T162609_N0511_R040_T17UPV_20241209T195414', 'GRANULE/g/IMG_DATA/x_B04.jp2', 100_003);

  it('any range equals the same slice of the whole file, whatever the chunk size', () => {
    const whole = all(src, 0, src.size, 1 << 20);
    expect(whole.length).toBe(100_003);
    for (const [start, end, chunk] of [[0, 16, 7], [1, 17, 3], [15, 33, 16], [4095, 70_001, 4096], [100_000, 100_003, 1]] as const) {
      expect(all(src, start, end, chunk).equals(whole.subarray(start, end))).toBe(true);
    }
    expect(all(src, 0, src.size, 1000).equals(whole)).toBe(true);
  });

  it('is deterministic per (product, path) and differs between files', () => {
    const again = syntheticSource('S2B_MSIL1C_20241209T162609_N0511_R040_T17UPV_20241209T195414', 'GRANULE/g/IMG_DATA/x_B04.jp2', 64);
    const other = syntheticSource('S2B_MSIL1C_20241209T162609_N0511_R040_T17UPV_20241209T195414', 'GRANULE/g/IMG_DATA/x_B03.jp2', 64);
    expect(all(again, 0, 64, 64).equals(all(src, 0, 64, 64))).toBe(true);
    expect(all(other, 0, 64, 64).equals(all(src, 0, 64, 64))).toBe(false);
  });

  it('sha3OfSource hashes the served bytes', async () => {
    expect(await sha3OfSource(src)).toBe(createHash('sha3-256').update(all(src, 0, src.size, 999)).digest('hex'));
  });

  it('rejects ranges outside the file', () => {
    expect(() => [...src.chunks(0, src.size + 1, 10)]).toThrow(RangeError);
  });
});

describe('parseRange', () => {
  it.each([
    ['bytes=0-', { kind: 'range', start: 0, end: 99 }],
    ['bytes=10-19', { kind: 'range', start: 10, end: 19 }],
    ['bytes=10-1000', { kind: 'range', start: 10, end: 99 }],
    ['bytes=-30', { kind: 'range', start: 70, end: 99 }],
    ['bytes=100-', { kind: 'unsatisfiable' }],
    ['bytes=20-10', { kind: 'unsatisfiable' }],
    ['bytes=0-1,5-6', { kind: 'none' }],
    ['items=0-1', { kind: 'none' }],
  ])('%s', (header, expected) => {
    expect(parseRange(header, 100)).toEqual(expected);
  });
});

describe('tileFootprint', () => {
  it('puts 32TNS in northern Italy and 01KAB near the antimeridian in the south', () => {
    const [[w, s], , [e, n]] = tileFootprint('32TNS') as [[number, number], [number, number], [number, number]];
    expect(w).toBeGreaterThan(8);
    expect(e).toBeLessThan(11);
    expect(s).toBeGreaterThan(40);
    expect(n).toBeLessThan(48);
    const [[w2, s2]] = tileFootprint('01KAB') as [[number, number]];
    expect(w2).toBeGreaterThanOrEqual(-180);
    expect(w2).toBeLessThan(-176);
    expect(s2).toBeLessThan(-16);
  });
});
