// Medians, ratios against `ws`, and the tables (terminal and markdown).
import { readFileSync } from 'node:fs';
import os from 'node:os';

export function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** Reads a dotted path ("latencyUs.p50") from an object. */
export function pick(obj, key) {
  let v = obj;
  for (const k of key.split('.')) v = v?.[k];
  return typeof v === 'number' ? v : NaN;
}

export function machine({ pinned }) {
  let cpu = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpu = m[1].trim();
  } catch {
    // not Linux
  }
  return {
    cpu,
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    pinning: pinned ? 'server on core 0, load generator on core 1 (taskset)' : 'none (taskset missing or one core)',
  };
}

export function fmt(v, kind) {
  if (!Number.isFinite(v)) return '–';
  switch (kind) {
    case 'int':
      return Math.round(v).toLocaleString('en-US');
    case 'k':
      return v >= 1e6 ? `${(v / 1e6).toFixed(2)} M` : v >= 1e4 ? `${(v / 1e3).toFixed(0)} k` : `${(v / 1e3).toFixed(1)} k`;
    case 'pct':
      return `${v.toFixed(0)} %`;
    case 'us':
      return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
    case 'mb':
      return v.toFixed(0);
    case 'bytes':
      return v >= 10240 ? `${(v / 1024).toFixed(1)} KiB` : `${Math.round(v).toLocaleString('en-US')} B`;
    case 'mib':
      return `${(v / 2 ** 20).toFixed(1)} MiB`;
    default:
      return String(v);
  }
}

/**
 * Rows for one scenario: the median of every column over the rounds that
 * succeeded, and the primary metric's ratio to ws.
 */
export function summarize(scenario, perServer, disturbedPct = 15) {
  const rows = [];
  const wsMedian = median((perServer.ws?.results ?? []).map((r) => pick(r, scenario.primary.key)));
  const wsColumn = (key) => median((perServer.ws?.results ?? []).map((r) => pick(r, key)));
  for (const [name, entry] of Object.entries(perServer)) {
    const row = { server: name, label: entry.label ?? name, rounds: entry.results.length, status: entry.status, note: entry.note };
    row.medians = {};
    for (const col of scenario.columns) row.medians[col.key] = median(entry.results.map((r) => pick(r, col.key)));
    const values = entry.results.map((r) => pick(r, scenario.primary.key)).filter(Number.isFinite);
    row.min = values.length ? Math.min(...values) : NaN;
    row.max = values.length ? Math.max(...values) : NaN;
    const value = row.medians[scenario.primary.key];
    row.ratio = name !== 'ws' && Number.isFinite(value) && Number.isFinite(wsMedian) && wsMedian > 0 ? value / wsMedian : NaN;
    // The ratio of each round to ws's run in the same round (runs alternate
    // A B A B, so a pair shares the machine's state): its spread is what
    // says whether a difference is real. A spread that crosses 1.0 is a tie.
    const paired = name === 'ws' ? [] : pairedRatios(entry.results, perServer.ws?.results ?? [], scenario.primary.key);
    row.ratioMin = paired.length ? Math.min(...paired) : NaN;
    row.ratioMax = paired.length ? Math.max(...paired) : NaN;
    // columns marked vsWs also show their own ratio to ws's median
    row.columnRatios = {};
    for (const col of scenario.columns) {
      if (!col.vsWs || name === 'ws') continue;
      const w = wsColumn(col.key);
      if (Number.isFinite(row.medians[col.key]) && Number.isFinite(w) && w > 0) row.columnRatios[col.key] = row.medians[col.key] / w;
    }
    row.loadgenBound = (row.medians.loadgenCpuPct ?? 0) > 90;
    row.disturbedRounds = entry.results.filter((r) => r.otherCpuPct > disturbedPct).length;
    rows.push(row);
  }
  return rows;
}

/** ours[i] / ws[i] for every round both have (the pairs ran back to back). */
function pairedRatios(ours, ws, key) {
  const out = [];
  for (let i = 0; i < Math.min(ours.length, ws.length); i++) {
    const a = pick(ours[i], key);
    const b = pick(ws[i], key);
    if (Number.isFinite(a) && Number.isFinite(b) && b > 0) out.push(a / b);
  }
  return out;
}

/**
 * better / worse / tie for a row: a tie when the per-round ratios fall on
 * both sides of 1.0 (or, with one round, when the ratio is within 3 %).
 */
export function verdict(row, scenario) {
  if (!Number.isFinite(row.ratio)) return '–';
  const crosses = Number.isFinite(row.ratioMin) && row.ratioMin < row.ratioMax && row.ratioMin <= 1 && row.ratioMax >= 1;
  if (crosses || Math.abs(row.ratio - 1) < 0.03) return 'tie';
  const better = scenario.primary.better === 'higher' ? row.ratio > 1 : row.ratio < 1;
  return better ? 'better' : 'worse';
}

function ratioText(row, scenario) {
  if (row.server === 'ws') return 'baseline';
  if (!Number.isFinite(row.ratio)) return '–';
  const spread = Number.isFinite(row.ratioMin) && row.ratioMin < row.ratioMax ? `, rounds ${row.ratioMin.toFixed(2)}–${row.ratioMax.toFixed(2)}` : '';
  return `${row.server}/ws = ${row.ratio.toFixed(2)}× (${verdict(row, scenario)}${spread})`;
}

/** A row's cells; a skipped or failed row is [label, reason] only. */
function cells(row, scenario) {
  if (row.status !== 'ok') return [row.label, row.status === 'skipped' ? `skipped: ${row.note}` : `FAILED: ${row.note}`];
  return [
    row.label + (row.loadgenBound ? ' †' : '') + (row.disturbedRounds > 0 ? ` ‡${row.disturbedRounds}/${row.rounds}` : ''),
    ...scenario.columns.map((c) => fmt(row.medians[c.key], c.fmt) + (Number.isFinite(row.columnRatios?.[c.key]) ? ` (${row.columnRatios[c.key].toFixed(2)}×)` : '')),
    row.rounds > 1 ? `${fmt(row.min, primaryFmt(scenario))} – ${fmt(row.max, primaryFmt(scenario))}` : '',
    ratioText(row, scenario),
  ];
}

function primaryFmt(scenario) {
  return scenario.columns.find((c) => c.key === scenario.primary.key)?.fmt;
}

function headers(scenario) {
  return ['server', ...scenario.columns.map((c) => c.label), `${scenario.primary.label} min – max`, `vs ws (${scenario.primary.label}, ${scenario.primary.better} is better)`];
}

export function textTable(scenario, rows) {
  const head = headers(scenario);
  const body = rows.map((r) => cells(r, scenario));
  const full = body.filter((b) => b.length === head.length);
  const widths = head.map((h, i) => Math.max(h.length, ...full.map((b) => String(b[i]).length), ...(i === 0 ? body.map((b) => String(b[0]).length) : [])));
  const line = (cols) => cols.map((c, i) => (i === 0 || i === cols.length - 1 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ');
  const out = [`${scenario.title}`, line(head), line(widths.map((w) => '-'.repeat(w)))];
  for (const b of body) out.push(b.length === head.length ? line(b) : `${String(b[0]).padEnd(widths[0])}  ${b[b.length - 1]}`);
  return out.join('\n');
}

export function markdownTable(scenario, rows) {
  const head = headers(scenario);
  const out = [`#### ${scenario.title}`, '', `| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 || i === head.length - 1 ? ' --- ' : ' ---: ')).join('|')}|`];
  for (const r of rows) {
    const c = cells(r, scenario);
    // a skipped or failed row: the reason in the last column
    out.push(`| ${(c.length === head.length ? c : [c[0], ...head.slice(2).map(() => ''), c[1]]).join(' | ')} |`);
  }
  if (scenario.note) out.push('', scenario.note);
  return out.join('\n');
}

export const FOOTNOTES = [
  '† the load generator used more than 90 % of its core: this row may be limited by the load generator, not the server; compare server CPU per unit.',
  '‡k/n: in k of n rounds other processes used more than 15 % of a core during the measurement window (from /proc/stat), even after measuring that round again; rerun on a quiet machine.',
  'Each value is the median over rounds; every round starts a fresh server process, servers alternate A B A B.',
  '"rounds a–b" after a ratio: the lowest and highest ratio of one round to ws in the same round; when they lie on both sides of 1.0 the row is a tie, whatever its median ratio.',
  'Server CPU is user+system time of the whole server process (all threads) over the measurement window, from /proc/<pid>/stat. On loopback part of the kernel TCP work of one side is charged to the other side\'s CPU.',
];
