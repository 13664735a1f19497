// benchmarks/trace_summary.mjs - what a Chromium trace (dashboard_smooth.mjs --trace FILE)
// says the page's main thread did: its top-level tasks (count, wall and thread CPU time,
// how many took longer than a frame), the time by kind of work (script, layout, style,
// paint, GC, ...: wall time of the events of that name, nested ones counted in their own
// name too), the page's script by function (FunctionCall events), and its workers' threads
// (the event stream's: clients/dashboard/stream.js).  Wall time far above
// CPU time means the thread waited for a core (a loaded machine), not that it computed.
//
//   node benchmarks/trace_summary.mjs FILE [--top 15]
import { readFileSync } from 'node:fs';

const file = process.argv[2];
const ti = process.argv.indexOf('--top');
const TOP = ti > 0 ? Number(process.argv[ti + 1]) : 15;
if (!file) { console.error('usage: node benchmarks/trace_summary.mjs TRACE.json [--top N]'); process.exit(2); }
const raw = JSON.parse(readFileSync(file, 'utf8'));
const events = Array.isArray(raw) ? raw : raw.traceEvents || [];

// the renderer's main thread: CrRendererMain of the process that ran the page's script
const names = new Map();
for (const e of events) if (e.ph === 'M' && e.name === 'thread_name') names.set(e.pid + ':' + e.tid, e.args.name);
const scriptBy = new Map();
for (const e of events) {
  if (e.ph === 'X' && e.name === 'FunctionCall' && names.get(e.pid + ':' + e.tid) === 'CrRendererMain') {
    const k = e.pid + ':' + e.tid;
    scriptBy.set(k, (scriptBy.get(k) || 0) + (e.dur || 0));
  }
}
const main = [...scriptBy.entries()].sort((a, b) => b[1] - a[1])[0];
if (!main) { console.log('no renderer main thread with script in this trace'); process.exit(1); }
const onMain = events.filter((e) => e.ph === 'X' && e.pid + ':' + e.tid === main[0]);
const t0 = Math.min(...onMain.map((e) => e.ts)), t1 = Math.max(...onMain.map((e) => e.ts + (e.dur || 0)));
const ms = (us) => (us / 1000).toFixed(1);

// top-level tasks
const top = onMain.filter((e) => e.name === 'RunTask' || (e.cat && e.cat.split(',').includes('toplevel') && /RunTask/.test(e.name)));
const wall = top.reduce((s, e) => s + (e.dur || 0), 0), cpu = top.reduce((s, e) => s + (e.tdur || 0), 0);
const durs = top.map((e) => e.dur || 0).sort((a, b) => a - b);
console.log(`${file}: ${ms(t1 - t0)} ms traced on the renderer's main thread (${main[0]})`);
console.log(`top-level tasks: ${top.length}, wall ${ms(wall)} ms, thread CPU ${ms(cpu)} ms ` +
  `(${wall ? Math.round(100 * cpu / wall) : 0}% of the wall time on a core); ` +
  `> 16.7 ms: ${durs.filter((d) => d > 16700).length}, > 50 ms: ${durs.filter((d) => d > 50000).length}, ` +
  `longest ${ms(durs[durs.length - 1] || 0)} ms`);

// by kind of work
const kinds = ['FunctionCall', 'EventDispatch', 'TimerFire', 'FireAnimationFrame', 'ResizeObserver', 'IntersectionObserverController::computeIntersections',
  'UpdateLayoutTree', 'Layout', 'PrePaint', 'Paint', 'PaintImage', 'Layerize', 'UpdateLayer', 'CompositeLayers', 'Commit',
  'MinorGC', 'MajorGC', 'V8.GC_SCAVENGER', 'V8.GC_MARK_COMPACTOR', 'ParseHTML', 'EvaluateScript', 'v8.compile',
  'ProxyMain::BeginMainFrame', 'ThreadProxy::BeginMainFrame', 'LayerTreeHost::DoUpdateLayers',
  'ResponseBodyLoader::OnStateChange', 'Resource::appendData'];
const byKind = new Map();
for (const e of onMain) {
  if (!kinds.includes(e.name)) continue;
  const k = byKind.get(e.name) || { n: 0, wall: 0, cpu: 0 };
  k.n++; k.wall += e.dur || 0; k.cpu += e.tdur || 0;
  byKind.set(e.name, k);
}
console.log('by kind (wall / CPU ms, count):');
for (const [n, k] of [...byKind.entries()].sort((a, b) => b[1].wall - a[1].wall))
  console.log(`  ${n.padEnd(28)} ${ms(k.wall).padStart(9)} / ${ms(k.cpu).padStart(8)}  ×${k.n}`);

// script by function (the outermost FunctionCall of each task)
const byFn = new Map();
for (const e of onMain) {
  if (e.name !== 'FunctionCall' || !e.args || !e.args.data) continue;
  const d = e.args.data;
  const k = (d.functionName || '(anonymous)') + ' ' + String(d.url || '').split('/').pop() + ':' + (d.lineNumber ?? '');
  const v = byFn.get(k) || { n: 0, wall: 0, cpu: 0 };
  v.n++; v.wall += e.dur || 0; v.cpu += e.tdur || 0;
  byFn.set(k, v);
}
console.log(`script by function (top ${TOP}, wall / CPU ms, count):`);
for (const [n, v] of [...byFn.entries()].sort((a, b) => b[1].wall - a[1].wall).slice(0, TOP))
  console.log(`  ${n.slice(0, 60).padEnd(60)} ${ms(v.wall).padStart(9)} / ${ms(v.cpu).padStart(8)}  ×${v.n}`);

// the page's workers (stream.js reads the event stream in one): the same process's
// DedicatedWorker threads, their script (FunctionCall) and tasks
const pid = main[0].split(':')[0];
for (const [k, n] of names) {
  if (!k.startsWith(pid + ':') || !/^DedicatedWorker/.test(n)) continue;
  const on = events.filter((e) => e.ph === 'X' && e.pid + ':' + e.tid === k);
  const fc = on.filter((e) => e.name === 'FunctionCall');
  const tasks = on.filter((e) => e.name === 'RunTask' || e.name === 'ThreadControllerImpl::RunTask');
  const sum = (xs, f) => xs.reduce((s, e) => s + (e[f] || 0), 0);
  if (!on.length) continue;
  console.log(`${n} (${k}): script ${ms(sum(fc, 'dur'))} ms wall / ${ms(sum(fc, 'tdur'))} ms CPU in ${fc.length} calls; ` +
    `tasks ${tasks.length}, wall ${ms(sum(tasks, 'dur'))} ms, CPU ${ms(sum(tasks, 'tdur'))} ms`);
}
