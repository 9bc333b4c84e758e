// Numbers, sizes, times and money as people read them. Money stays exact:
// the API sends decimal strings, added here as scaled BigInts, never floats.

const nf = new Intl.NumberFormat();

export function num(n) {
  return n == null ? '—' : nf.format(n);
}

export function bytes(n) {
  if (n == null) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** Unix seconds as a local date and time. */
export function when(unix) {
  if (unix == null) return '—';
  return new Date(unix * 1000).toLocaleString();
}

/** A duration in seconds, e.g. "3 min 5 s". */
export function duration(secs) {
  if (secs == null || !Number.isFinite(secs)) return '—';
  const s = Math.max(0, Math.round(secs));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** Unix seconds relative to now, e.g. "5 min ago" or "in 2 h". */
export function ago(unix, now = Date.now() / 1000) {
  if (unix == null) return '—';
  const d = now - unix;
  return d >= 0 ? `${duration(d)} ago` : `in ${duration(-d)}`;
}

const SCALE = 18n;
const ONE = 10n ** SCALE;

/** A decimal string as a BigInt scaled by 10^18 (digits beyond dropped). */
export function dec(s) {
  if (s == null || s === '') return 0n;
  const str = String(s).trim();
  const neg = str.startsWith('-');
  const [int, frac = ''] = str.replace(/^[-+]/, '').split('.');
  if (!/^\d*$/.test(int) || !/^\d*$/.test(frac)) return 0n;
  const v = BigInt(int || '0') * ONE + BigInt((frac + '0'.repeat(Number(SCALE))).slice(0, Number(SCALE)) || '0');
  return neg ? -v : v;
}

/** A scaled BigInt as money: "$0.000021", at most `digits` decimals, trailing zeros cut. */
export function money(v, digits = 6) {
  const x = typeof v === 'bigint' ? v : dec(v);
  const neg = x < 0n;
  const a = neg ? -x : x;
  const unit = 10n ** (SCALE - BigInt(digits));
  const rounded = (a + unit / 2n) / unit;
  const base = 10n ** BigInt(digits);
  let frac = (rounded % base).toString().padStart(digits, '0').replace(/0+$/, '');
  if (frac.length < 2) frac = frac.padEnd(2, '0');
  const int = nf.format(rounded / base);
  return `${neg ? '-' : ''}$${int}.${frac}`;
}

/** The share `part / whole` of a bar, 0..1. */
export function share(part, whole) {
  if (whole <= 0n) return 0;
  return Number((part * 10000n) / whole) / 10000;
}

/** YYYY-MM-DD of a Date, UTC (the spend ledger's days). */
export function day(d) {
  return d.toISOString().slice(0, 10);
}
