// Summarises the raw result lines of bench/run.sh (read from the file named by
// argv[2], or stdin): median and min–max per system and metric, then the ratios of
// ferry's medians (with and without history) to BullMQ's and to redis-benchmark's
// pipelined XADD.
//
// Result lines look like (an optional "[run i/k] " prefix is ignored):
//   redis-benchmark xadd_pipelined_per_s=564653 lpush_pipelined_per_s=451060
//   bullmq mode=tuned enqueue_jobs_per_s=12935 process_jobs_per_s=7736
//   ferry enqueue_jobs_per_s=28854 process_jobs_per_s=25535
//   ferry send_batch_p50_ms=12.97 ...
// Other lines are skipped.

import { readFileSync } from 'node:fs';

const text = readFileSync(process.argv[2] ?? 0, 'utf8');
const samples = new Map(); // "system\tmetric" -> numbers, in insertion order

for (const raw of text.split('\n')) {
  const line = raw.replace(/^\[run [^\]]*\]\s*/, '').trim();
  const m = /^(redis-benchmark|bullmq|ferry)\s+(.*)$/.exec(line);
  if (!m) continue;
  let system = m[1];
  const pairs = [];
  for (const tok of m[2].split(/\s+/)) {
    const kv = /^([a-z0-9_]+)=(\S+)$/.exec(tok);
    if (!kv) continue;
    if (kv[1] === 'mode') system = `${system} ${kv[2]}`;
    else if (Number.isFinite(Number(kv[2]))) pairs.push([kv[1], Number(kv[2])]);
  }
  for (const [metric, value] of pairs) {
    const key = `${system}\t${metric}`;
    if (!samples.has(key)) samples.set(key, []);
    samples.get(key).push(value);
  }
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const h = Math.floor(s.length / 2);
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

const fmt = (x) => (Math.abs(x) >= 100 ? String(Math.round(x)) : x.toFixed(2));
const rows = [['system', 'metric', 'runs', 'median', 'min', 'max']];
for (const [key, xs] of samples) {
  const [system, metric] = key.split('\t');
  rows.push([system, metric, String(xs.length), fmt(median(xs)), fmt(Math.min(...xs)), fmt(Math.max(...xs))]);
}
const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
const numeric = (i) => i >= 2;
for (const [n, r] of rows.entries()) {
  console.log(r.map((c, i) => (numeric(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  '));
  if (n === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
}

const med = (system, metric) => {
  const xs = samples.get(`${system}\t${metric}`);
  return xs ? median(xs) : undefined;
};
const ratio = (label, a, b) => {
  console.log(`${label} = ${a !== undefined && b ? (a / b).toFixed(2) : 'n/a'}`);
};
console.log('');
console.log('ratios of medians:');
for (const f of ['ferry', 'ferry no-history']) {
  for (const [b, label] of [['bullmq defaults', 'bullmq-defaults'], ['bullmq tuned', 'bullmq-tuned']]) {
    for (const phase of ['enqueue', 'process']) {
      ratio(`${f}/${label} ${phase}`, med(f, `${phase}_jobs_per_s`), med(b, `${phase}_jobs_per_s`));
    }
  }
  for (const phase of ['enqueue', 'process']) {
    ratio(`${f}/xadd ${phase}`, med(f, `${phase}_jobs_per_s`), med('redis-benchmark', 'xadd_pipelined_per_s'));
  }
}
