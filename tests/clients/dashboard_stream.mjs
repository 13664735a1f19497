// dashboard_stream.mjs - what test_dashboard.mjs checks of where the page reads its event
// stream: in a Worker (clients/dashboard/stream.js, its own EventSource), handing the page
// each record's steps packed per model in typed arrays; and, where the page has no Worker,
// on the page's own EventSource, still without a request while the stream is up.
import * as B from './browser.mjs';

const { check, waitFor } = B;

// An init script (context.addInitScript): counts what the page's workers post it --
// window.__workerMsgs = {events: "events" messages, packed: their ['steps', ...] items,
// typed: those whose steps and losses are Float64Arrays, unpacked: plain 'step' items}.
export function countWorkerMessages() {
  if (typeof Worker !== 'function') return;
  window.__workerMsgs = { events: 0, packed: 0, typed: 0, unpacked: 0 };
  const d = Object.getOwnPropertyDescriptor(Worker.prototype, 'onmessage');
  if (!d) return;
  Object.defineProperty(Worker.prototype, 'onmessage', { configurable: true, get: d.get, set(fn) {
    d.set.call(this, function (m) {
      const x = m.data || {}, w = window.__workerMsgs;
      if (x.kind === 'events') {
        w.events++;
        for (const [t, v] of x.items || []) {
          if (t === 'steps') { w.packed++; if (v.steps instanceof Float64Array && v.losses instanceof Float64Array) w.typed++; }
          else if (t === 'step') w.unpacked++;
        }
      }
      return fn.call(this, m);
    });
  } });
}

// stream.js's pack() (the page has it as ETStream.pack) on records made up here: a model's
// consecutive step events merge into one item; a rollback (steps not going on), another
// event of that model or steps without their own times start a new one; null losses are NaN.
export async function packs(page) {
  const got = await page.evaluate(() => {
    const st = (model, steps, extra) => ({ event: 'step', id: '1', data: Object.assign({ model, step: steps[steps.length - 1][0],
      loss: steps[steps.length - 1][1], lr: 0.1, time: 100 + steps[0][0], steps, times: steps.map((s) => 100 + s[0]) }, extra || {}) });
    const { items, buffers } = ETStream.pack([
      st('a', [[1, 0.5], [2, null]]), st('b', [[7, 0.25]]), st('a', [[3, 0.125]], { lr: 0.05 }),
      st('a', [[2, 0.75]]),                                    // rolled back: a new item
      { event: 'evaluation', id: '2', data: { model: 'a', step: 2, metrics: { loss: 1 } } },
      st('a', [[3, 0.5]]),                                     // after another event of a: a new item
      st('b', [[8, 0.5]], { times: undefined }),               // no own times: not merged
      { event: 'job', id: '3', data: { model: 'b', id: 1, state: 'running' } },
    ]);
    return { buffers: buffers.length, items: items.map(([t, d]) => (t !== 'steps' ? [t] : [t, d.model,
      Array.from(d.steps), Array.from(d.losses, (v) => (Number.isNaN(v) ? 'NaN' : v)), Array.from(d.lrs), Array.from(d.times, (v) => (Number.isNaN(v) ? 'NaN' : v)),
      d.own, d.step, d.loss, d.steps instanceof Float64Array])) };
  });
  const want = [
    ['steps', 'a', [1, 2, 3], [0.5, 'NaN', 0.125], [0.1, 0.1, 0.05], [101, 102, 103], true, 3, 0.125, true],
    ['steps', 'b', [7], [0.25], [0.1], [107], true, 7, 0.25, true],
    ['steps', 'a', [2], [0.75], [0.1], [102], true, 2, 0.75, true],
    ['evaluation'],
    ['steps', 'a', [3], [0.5], [0.1], [103], true, 3, 0.5, true],
    ['steps', 'b', [8], [0.5], [0.1], ['NaN'], false, 8, 0.5, true],
    ['job'],
  ];
  const ok = JSON.stringify(got.items) === JSON.stringify(want) && got.buffers === 4 * 5;
  check('stream.js packs a record: a model\'s consecutive steps merged, split at a rollback, another event or missing times',
    ok, ok ? '' : `got ${JSON.stringify(got)}`);
}

// A page whose stream worker cannot be had reads the stream on its own EventSource ("events"
// records counted on the page), sends no request while training goes on, and keeps up.
// how: 'none' (an init script deletes window.Worker) or 'unsupported' (the worker it starts
// answers {kind: 'unsupported'}, as stream.js does where a worker has no EventSource).
// train() trains the model of `card` and answers the daemon's step.
export async function withoutWorkers({ browser, url, token, card, watch, train, how = 'none' }) {
  const noW = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  await noW.addInitScript(([t, h]) => {
    if (h === 'none') delete window.Worker;
    else {
      const W = window.Worker;
      const src = URL.createObjectURL(new Blob(["self.onmessage = () => self.postMessage({ kind: 'unsupported' });"], { type: 'text/javascript' }));
      window.__workersStarted = 0;
      window.Worker = function () { window.__workersStarted++; return new W(src); };
      window.Worker.prototype = W.prototype;
    }
    localStorage.setItem('easytorch.token', t);
    const ES = window.EventSource, add = ES.prototype.addEventListener;
    window.__esRecords = {};
    ES.prototype.addEventListener = function (type, fn, o) {
      return add.call(this, type, function (ev) { window.__esRecords[type] = (window.__esRecords[type] || 0) + 1; return fn.call(this, ev); }, o);
    };
  }, [token, how]);
  try {
    const wp = await noW.newPage();
    watch(wp, ` (Worker: ${how})`);
    const streams = [], quiet = [];
    let spying = false;
    wp.on('request', (r) => {
      if (/\/v1\/events/.test(r.url())) streams.push(r.url()); else if (spying) quiet.push(new URL(r.url()).pathname);
    });
    await wp.goto(url + '/');
    const onPage = await waitFor(async () => (await wp.getAttribute('#status', 'data-stream')) === 'page', 10000);
    await waitFor(async () => Number(await wp.getAttribute(`${card} .plot`, 'data-points')) > 0, 10000);
    const p0 = Number(await wp.getAttribute(`${card} .plot`, 'data-points'));
    spying = true;
    const step = await train();
    const caught = await waitFor(async () => Number(await wp.getAttribute(card, 'data-step')) === step, 15000);
    spying = false;
    const p1 = Number(await wp.getAttribute(`${card} .plot`, 'data-points'));
    const rec = await wp.evaluate(() => window.__esRecords);
    const started = await wp.evaluate(() => window.__workersStarted);
    check(how === 'none' ? 'without Workers the page reads the stream on its own EventSource ("events" records), polls nothing, and keeps up'
      : 'a stream worker without EventSource hands the stream back: the page reads it on its own EventSource, polls nothing, keeps up',
      !!onPage && (how === 'none' || started >= 1) && streams.length > 0 && (rec.events || 0) >= 1 && quiet.length === 0 && !!caught && p1 > p0,
      `data-stream ${await wp.getAttribute('#status', 'data-stream')}, workers started ${started}, records ${JSON.stringify(rec)}, ` +
      `${quiet.length} requests (${[...new Set(quiet)].slice(0, 4).join(', ')}), points ${p0} → ${p1}, step ${await wp.getAttribute(card, 'data-step')} vs ${step}`);
    if (how === 'none') await packs(wp);
  } finally {
    await noW.close();
  }
}
