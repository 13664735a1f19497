// benchmarks/dashboard_smooth.mjs - issue 17's smoothness measurement: the dashboard in
// headless Chromium (1400x900) while N models (default 100) train at once as jobs, each
// pushing its steps to the page.  Reports the page's frame intervals (requestAnimationFrame:
// median / p95 / p99 / max, frames over 50 ms), long tasks (PerformanceObserver 'longtask':
// count, total, longest), the requests the page made, the points it drew per second, how it
// kept up (event stream or polling), the training steps per second, and the machine's load.
// A benchmark, not a test: it prints numbers, judges nothing, exits 1 only when it could not
// measure.
//
// Then the same training measurement with the page's stream read on its main thread (an
// init script deletes window.Worker: the page's fallback, as the page read the stream before
// stream.js), and with the page's event stream uncoalesced (an init script drops ?coalesce=
// from its EventSource's or its stream worker's URL: one record per event, as before the
// daemon coalesced for the page), side by side in one run.
//
// --baseline-dir DIR: the dashboard's files from DIR (another version of clients/dashboard,
// e.g. `git archive main clients/dashboard | tar -x -C /tmp/base`), served to the page in
// place of the daemon's own (the browser answers the page's requests for them; same origin,
// same daemon, same models), measured while training alternately with the daemon's page,
// --rounds times each: a before/after in one run, on the same machine load.
//
//   node benchmarks/dashboard_smooth.mjs --easytorchd build/src/server/easytorchd \
//        [--models 100] [--seconds 20] [--json FILE] [--trace FILE]
//        [--baseline-dir DIR [--rounds 2] [--baseline-trace FILE]] [--main-thread-trace FILE]
// (benchmarks/trace_summary.mjs FILE sums up a trace)
//
// Uses tests/clients' playwright-core (npm ci there) and Debian's /usr/bin/chromium.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import * as B from '../tests/clients/browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const clients = path.join(here, '..', 'tests', 'clients');
const N = Number(B.opt('--models', '100'));
const SECONDS = Number(B.opt('--seconds', '20'));
const JSON_OUT = B.opt('--json', '');
const TRACE = B.opt('--trace', '');   // a Chromium trace of the (coalesced) training phase
const BASE_DIR = B.opt('--baseline-dir', '');
const BASE_TRACE = B.opt('--baseline-trace', '');   // a trace of the baseline page's first round
const NOWORKER_TRACE = B.opt('--main-thread-trace', '');   // a trace of the no-Worker phase
const ROUNDS = Number(B.opt('--rounds', BASE_DIR ? '2' : '1'));
const uptime = () => { try { return execFileSync('uptime', { encoding: 'utf8' }).trim(); } catch (e) { return loadavg().join(' '); } };

// CPU seconds (user + system) a process and its threads used so far.
function cpuSeconds(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch (e) { return 0; }   // gone meanwhile
}
function machineBusy() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + f[4];
  return { idle, total: f.reduce((a, b) => a + b, 0) };
}
const pct = (xs, q) => { const s = xs.slice().sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))] : NaN; };

async function main() {
  const chromium = await B.loadChromium(clients, ['playwright-core', 'uplot']);
  if (!chromium) return B.finish();
  if (BASE_DIR && !existsSync(path.join(BASE_DIR, 'index.html'))) {
    B.check('--baseline-dir has an index.html', false, BASE_DIR);
    return B.finish();
  }
  console.log(`uptime at the start: ${uptime()}`);
  const d = await B.startDaemon([]);
  const api = async (method, p, body) => {
    const r = await fetch(d.url + p, { method, body: body ? JSON.stringify(body) : undefined,
      headers: body ? { 'Content-Type': 'application/json' } : {} });
    const j = await r.json().catch(() => null);
    if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${JSON.stringify(j)}`);
    return j;
  };
  let browser = null;
  try {
    await B.ready(d);
    const xs = [], ys = [];
    for (let i = 0; i < 64; i++) { const x = -3 + 6 * i / 63; xs.push([x]); ys.push([Math.sin(x)]); }
    const names = [];
    for (let i = 0; i < N; i++) {
      const name = 'm' + String(i).padStart(3, '0');
      names.push(name);
      await api('POST', '/v1/models', { name, seed: i, loss: 'MSELoss', optimizer: { type: 'Adam', lr: 0.01 },
        layers: [{ type: 'Linear', in_features: 1, out_features: 16 }, { type: 'Tanh' }, { type: 'Linear', in_features: 16, out_features: 1 }] });
      // some history first, so the idle anchor's charts have lines too
      await api('POST', `/v1/models/${name}/train`, { inputs: xs, targets: ys, epochs: 100, batch_size: 32 });
    }
    browser = await B.launch(chromium);
    const errors = [];
    let requests = 0, counting = false, streamUrls = [];
    let page = null, context = null, cdp = null;
    async function open(uncoalesced, dir, noWorker) {
      if (context) await context.close();
      context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
      if (dir) {
        // the page's own files from dir (the API requests still go to the daemon)
        const files = new Set(readdirSync(dir));
        const origin = new URL(d.url).origin;
        const fileOf = (u) => (u.origin !== origin ? null : u.pathname === '/' ? 'index.html'
          : files.has(u.pathname.slice(1)) ? u.pathname.slice(1) : null);
        await context.route((u) => fileOf(u) !== null, (route) => route.fulfill({ path: path.join(dir, fileOf(new URL(route.request().url()))) }));
      }
      if (uncoalesced) await context.addInitScript(() => {
        const drop = (url) => String(url).replace(/coalesce=[^&]*&?/, '').replace(/\?$/, '');
        const ES = window.EventSource;
        window.EventSource = function (url, o) { return new ES(drop(url), o); };
        window.EventSource.prototype = ES.prototype;
        Object.assign(window.EventSource, { CONNECTING: 0, OPEN: 1, CLOSED: 2 });
        // the page's stream worker (stream.js) gets its URL in an {cmd: 'open', url} message
        if (typeof Worker === 'function') {
          const post = Worker.prototype.postMessage;
          Worker.prototype.postMessage = function (m, t) {
            return post.call(this, m && m.cmd === 'open' ? Object.assign({}, m, { url: drop(m.url) }) : m, t);
          };
        }
      });
      // the page without Workers: it reads the stream on its main thread (its fallback)
      if (noWorker) await context.addInitScript(() => { delete window.Worker; });
      page = await context.newPage();
      page.on('pageerror', (e) => errors.push(e.message));
      streamUrls = [];
      page.on('request', (r) => {
        if (/\/v1\/events/.test(r.url())) streamUrls.push(new URL(r.url()).search.replace(/access_token=[^&]*/, 'access_token=…'));
        else if (counting) requests++;
      });
      await page.goto(d.url + '/');
      await B.waitFor(async () => Number(await page.getAttribute('#models', 'data-count')) === N, 60000);
      // the page's main-thread busy time (Chromium's own accounting: tasks, script, layout), so
      // the cost is known apart from how much CPU the loaded machine gave the browser
      cdp = await page.context().newCDPSession(page);
      await cdp.send('Performance.enable');
    }
    // One measurement of the page for SECONDS: frames, long tasks, requests, CPU, load.
    const steps = async () => (await api('GET', '/v1/models')).models.reduce((s, m) => s + m.step, 0);
    const points = () => page.$$eval('#models article .plot', (ps) => ps.reduce((s, p) => s + Number(p.dataset.points || 0), 0));
    const perf = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((x) => [x.name, x.value]));
    async function measure(label) {
      const s0 = await steps(), p0 = await points();
      const cpu0 = { daemon: cpuSeconds(d.proc.pid), m: machineBusy(), perf: await perf() };
      const load0 = loadavg()[0];
      requests = 0;
      counting = true;
      const t0 = Date.now();
      const m = await page.evaluate(async (ms) => {
        const frames = [], longs = [];
        const po = new PerformanceObserver((l) => { for (const e of l.getEntries()) longs.push(e.duration); });
        po.observe({ entryTypes: ['longtask'] });
        let last = performance.now();
        const end = last + ms;
        await new Promise((resolve) => {
          const tick = (t) => {
            frames.push(t - last);
            last = t;
            if (t < end) requestAnimationFrame(tick); else resolve();
          };
          requestAnimationFrame(tick);
        });
        po.disconnect();
        const st = document.getElementById('status').dataset;
        return { frames, longs, live: st.live, stream: st.stream || '' };
      }, SECONDS * 1000);
      const wall = (Date.now() - t0) / 1000;
      counting = false;
      const s1 = await steps(), p1 = await points();
      const m1 = machineBusy();
      const busy = 1 - (m1.idle - cpu0.m.idle) / (m1.total - cpu0.m.total);
      const f = m.frames.slice(1);
      const r = {
        phase: label, models: N, seconds: +wall.toFixed(1), keeping_up: m.live, stream_read_in: m.stream,
        stream_requests: streamUrls.slice(),
        frames: f.length, fps: +(f.length / wall).toFixed(1),
        frame_ms: { median: +pct(f, 0.5).toFixed(1), p95: +pct(f, 0.95).toFixed(1), p99: +pct(f, 0.99).toFixed(1),
          max: +Math.max(...f).toFixed(1) },
        frames_over_50ms: f.filter((x) => x > 50).length,
        long_tasks: { count: m.longs.length, total_ms: Math.round(m.longs.reduce((a, b) => a + b, 0)),
          longest_ms: Math.round(Math.max(0, ...m.longs)) },
        page_requests_per_s: +(requests / wall).toFixed(1),
        points_drawn_per_s: Math.round((p1 - p0) / wall),
        train_steps_per_s: Math.round((s1 - s0) / wall),
        cpu_seconds: { daemon: +(cpuSeconds(d.proc.pid) - cpu0.daemon).toFixed(1) },
        main_thread_busy: await (async () => {
          const q = await perf(), k = (n) => +((q[n] - cpu0.perf[n]) / wall).toFixed(3);
          return { tasks: k('TaskDuration'), script: k('ScriptDuration'), layout: k('LayoutDuration'), style: k('RecalcStyleDuration') };
        })(),
        machine: { cores: cpus().length, busy: +busy.toFixed(2), load1_before: +load0.toFixed(2), load1_after: +loadavg()[0].toFixed(2) },
      };
      console.log(`${label}: ${N} models (${m.live}${m.stream ? ' read in the ' + m.stream : ''}, GET /v1/events${[...new Set(streamUrls)].join(' ')}): ${r.fps} fps, frame median ${r.frame_ms.median} ms, ` +
        `p95 ${r.frame_ms.p95} ms, p99 ${r.frame_ms.p99} ms, max ${r.frame_ms.max} ms; ${r.frames_over_50ms} frames > 50 ms; ` +
        `long tasks ${r.long_tasks.count} (${r.long_tasks.total_ms} ms, longest ${r.long_tasks.longest_ms} ms); ` +
        `${r.page_requests_per_s} requests/s; ${r.points_drawn_per_s} points/s; ${r.train_steps_per_s} steps/s; ` +
        `page main thread busy ${Math.round(100 * r.main_thread_busy.tasks)}% (script ${Math.round(100 * r.main_thread_busy.script)}%, ` +
        `layout+style ${Math.round(100 * (r.main_thread_busy.layout + r.main_thread_busy.style))}%); daemon CPU ${r.cpu_seconds.daemon} s; ` +
        `machine ${r.machine.cores} cores ${Math.round(100 * busy)}% busy, load ${r.machine.load1_before}→${r.machine.load1_after}`);
      return r;
    }

    // the anchor: the same page and models, nothing training (what the machine's load alone does)
    await open(false);
    await sleep(2000);
    const idle = await measure('anchor (idle)');
    // every model trains: clients (two at a time, the machine's cores) train them round
    // robin, 10 steps per call (5 epochs of 2 batches of 32), so all N move together
    // (as jobs only --job-threads of them would run at once; the rest would queue)
    let training = true, calls = 0;
    const trainer = async (k) => {
      for (let i = k; training; i += 2) {
        await api('POST', `/v1/models/${names[i % N]}/train`, { inputs: xs, targets: ys, epochs: 5, batch_size: 32 });
        calls++;
      }
    };
    // one training measurement of a page: open it, warm up 3 s (every card has points, the
    // stream or polling runs), measure
    async function trained(label, uncoalesced, dir, trace, noWorker) {
      await open(uncoalesced, dir, noWorker);
      calls = 0;
      training = true;
      const trainers = [trainer(0), trainer(1)];
      await sleep(3000);
      if (trace) await browser.startTracing(page, { path: trace, screenshots: false,
        categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'v8.execute', 'blink', 'cc', 'gpu'] });
      const r = await measure(label);
      if (trace) await browser.stopTracing();
      training = false;
      await Promise.all(trainers);
      r.train_calls = calls;
      return r;
    }
    const busyR = await trained('training', false, '', TRACE);
    const runs = [busyR];
    if (BASE_DIR) {
      // before/after in one run: the baseline page and this one, alternately
      for (let i = 0; i < ROUNDS; i++) {
        runs.push(await trained(`training, baseline page (${BASE_DIR}), round ${i + 1}`, false, BASE_DIR, i === 0 ? BASE_TRACE : ''));
        if (i + 1 < ROUNDS) runs.push(await trained(`training, round ${i + 2}`, false, ''));
      }
    }
    // this page with the stream read on its main thread (no Worker: the page before stream.js)
    const onMain = await trained('training, stream on the main thread (no Worker)', false, '', NOWORKER_TRACE, true);
    runs.push(onMain);
    // the same with one EventSource record per event (the page before ?coalesce=)
    const plain = await trained('training, uncoalesced stream', true, '');
    console.log(`uptime at the end: ${uptime()}`);
    const r = { idle, training: busyR, training_main_thread_stream: onMain, training_uncoalesced: plain, runs, page_errors: errors.length };
    if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify(r, null, 1) + '\n');
    B.check('measured', busyR.frames > 0 && errors.length === 0, errors.slice(0, 3).join(' | '));
  } catch (e) {
    B.check('the measurement ran', false, (e.stack || String(e)) + (e.cause ? ' cause: ' + e.cause : '') + '\n' + d.log().slice(-2000));
  } finally {
    if (browser) await browser.close().catch(() => {});
    await B.stopDaemon(d);
  }
  B.finish();
}

main();
