// Human-readable figures for the dashboard. Pure functions, fixed English formatting (the same in
// every browser locale, so what the page shows is predictable).

const COUNT = new Intl.NumberFormat('en-US');
const BYTE_UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];

/** A count of things: 12345 → "12,345". */
export function formatCount(n) {
  return COUNT.format(n);
}

/**
 * Bytes in decimal (SI) units with three significant digits: 512 → "512 B", 2500000000 → "2.50 GB",
 * 123456789 → "123 MB". Negative amounts keep their sign.
 */
export function formatBytes(bytes) {
  const sign = bytes < 0 ? '−' : '';
  let value = Math.abs(bytes);
  if (value < 1000) return `${sign}${value} B`;
  let unit = 0;
  while (value >= 999.5 && unit < BYTE_UNITS.length - 1) {
    value /= 1000;
    unit += 1;
  }
  const digits = value >= 99.95 ? 0 : value >= 9.995 ? 1 : 2;
  return `${sign}${value.toFixed(digits)} ${BYTE_UNITS[unit]}`;
}

/** A ratio 0…1 as a percentage with one decimal: 0.6 → "60.0%"; null (nothing to divide) → "—". */
export function formatRatio(ratio) {
  return ratio === null || ratio === undefined ? '—' : `${(ratio * 100).toFixed(1)}%`;
}

/** A share of a total, formatted as {@link formatRatio} (so a share and a ratio of the same jobs read alike): (1, 3) → "33.3%"; "" when the total is 0. */
export function formatShare(part, total) {
  return total > 0 ? formatRatio(part / total) : '';
}

/** A duration in ms: 850 → "850 ms", 12340 → "12.3 s", 125000 → "2 min 5 s"; null → "—". */
export function formatDuration(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

/** An ISO 8601 instant as "YYYY-MM-DD HH:MM:SS" (UTC); null → "—". */
export function formatInstant(iso) {
  if (iso === null || iso === undefined) return '—';
  return new Date(iso).toISOString().slice(0, 19).replace('T', ' ');
}

/** The local wall-clock time of a Date: "14:03:07". */
export function formatClock(date) {
  return date.toLocaleTimeString('en-GB', { hour12: false });
}
