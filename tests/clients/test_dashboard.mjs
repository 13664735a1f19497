// The dashboard in a real browser against a real easytorchd.
//
//   node test_dashboard.mjs --easytorchd PATH [--out DIR]
//
// Starts the daemon with a token on a free port, opens the page in Debian's
// /usr/bin/chromium (driven by playwright-core from ./node_modules: run
// `npm ci` in tests/clients; the test runs it when node_modules is missing), gives the token when the page asks,
// trains a model over HTTP while the page is open and checks that the chart
// gains points during training, that the step shown matches
// GET /v1/models/{name}, that nothing is loaded from anywhere but the daemon,
// and takes screenshots (wide, phone, linear scale) into DIR (default: the
// current folder). Ends with `N passed, M failed`.
import { fileURLToPath } from 'node:url';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as B from './browser.mjs';
import * as V from './dashboard_views.mjs';
import * as S from './dashboard_stream.mjs';

const { OUT, check, finish, waitFor } = B;
const TOKEN = 'dashboard-test-token-42';

async function main() {
  const here = path.dirname(fileURLToPath(import.meta.url));
  // (uplot too: a node_modules from before uplot was pinned lacks it)
  const chromium = await B.loadChromium(here, ['playwright-core', 'uplot']);
  if (!chromium) return finish();
  mkdirSync(OUT, { recursive: true });

  // the charting library is vendored from npm at the version package.json pins: the
  // embedded files must be the package's, byte for byte
  for (const f of ['uPlot.iife.min.js', 'uPlot.min.css']) {
    const vendored = path.join(here, '..', '..', 'clients', 'dashboard', f);
    const npm = path.join(here, 'node_modules', 'uplot', 'dist', f);
    check(`clients/dashboard/${f} is uplot@${JSON.parse(readFileSync(path.join(here, 'package.json'))).dependencies.uplot}'s`,
      existsSync(vendored) && existsSync(npm) && readFileSync(vendored).equals(readFileSync(npm)));
  }

  const daemonArgs = ['--max-steps', '1000000000'];   // the cancel check's long job
  let d = await B.startDaemon(daemonArgs, TOKEN);
  const oldDirs = [];      // data dirs of daemons stopped for a restart (removed at the end)
  let restarting = false;  // while the daemon is down on purpose, the page's failed requests are expected
  const auth = { Authorization: `Bearer ${TOKEN}` };
  async function api(method, p, body) {
    const res = await fetch(d.url + p, {
      method, headers: body ? { ...auth, 'Content-Type': 'application/json' } : auth,
      body: body ? JSON.stringify(body) : undefined,
    });
    const j = await res.json().catch(() => null);
    if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${JSON.stringify(j)}`);
    return j;
  }
  await B.ready(d);

  const browser = await B.launch(chromium);
  const origin = new URL(d.url).origin;
  const foreign = [];
  const errors = [];
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
  // EventSource records the page's listeners got, by type (the stream is coalesced: "events")
  await context.addInitScript(() => {
    const ES = window.EventSource;
    if (!ES) return;
    window.__esRecords = {};
    const add = ES.prototype.addEventListener;
    ES.prototype.addEventListener = function (type, fn, o) {
      return add.call(this, type, function (ev) { window.__esRecords[type] = (window.__esRecords[type] || 0) + 1; return fn.call(this, ev); }, o);
    };
  });
  // ...and what the page's stream worker (stream.js) hands it (dashboard_stream.mjs)
  await context.addInitScript(S.countWorkerMessages);
  const page = await context.newPage();
  // the page's dedicated workers (the stream's: stream.js)
  const workers = [];
  page.on('worker', (w) => workers.push(w));
  const streamWorker = () => workers.filter((w) => /\/stream\.js$/.test(w.url())).pop();
  const lossPolls = [], streams = [], listPolls = [];
  page.on('request', (r) => {
    const u = r.url();
    if (/\/v1\/models\/sine\/loss/.test(u)) lossPolls.push(new URL(u).searchParams.get('since'));
    if (/\/v1\/events/.test(u)) streams.push(u);
    if (/\/v1\/models$/.test(new URL(u).pathname)) listPolls.push(Date.now());
  });
  // A poll of a model that was deleted while the page watched it gets 404 (the page then
  // drops the card): expected, and only for that model.  Any other 404 is an error.
  const notFound = [];
  const expectedRefusals = [];
  const eventsServed = true;   // this tree's daemon has GET /v1/events: its 404 would be an error
  // A console message that is an error the test did not provoke (null otherwise).
  function consoleFault(m) {
    // the first polls get 401 until the token is given: that is expected
    if (m.type() !== 'error' || /status of 401/.test(m.text())) return null;
    if (restarting && /ERR_CONNECTION_REFUSED|ERR_EMPTY_RESPONSE|Failed to fetch|ERR_CONNECTION_RESET/.test(m.text())) return null;
    // without GET /v1/events (an older daemon) the EventSource's 404 is how the page learns to poll
    const where = (m.location() && m.location().url) || '';
    if (!eventsServed && (/\/v1\/events/.test(where) || /EventSource/.test(m.text()))) return null;
    // a refusal the test provokes on purpose (deleting the serving version: 409)
    if (expectedRefusals.some(([p, st]) => where.endsWith(p) && m.text().includes(`status of ${st}`))) return null;
    if (/status of 404/.test(m.text()) && notFound.length &&
        notFound.every((u) => ['/v1/models/another', '/v1/models/ver'].some((p) => u.startsWith(p)) || (!eventsServed && u === '/v1/events'))) return null;
    return m.text();
  }
  const isForeign = (u) => !u.startsWith(origin + '/') && !u.startsWith('data:') && !u.startsWith('blob:' + origin + '/');
  // Every page the test opens: requests to other hosts, script errors, console errors.
  function watch(p, label, sink = { foreign, errors, notFound }) {
    p.on('request', (r) => { if (isForeign(r.url())) sink.foreign.push(r.url()); });
    p.on('pageerror', (e) => sink.errors.push(`pageerror${label}: ${e.message}`));
    p.on('response', (r) => { if (r.status() === 404) sink.notFound.push(new URL(r.url()).pathname); });
    p.on('console', (m) => { const f = consoleFault(m); if (f) sink.errors.push(`console${label}: ${f}`); });
  }
  watch(page, '');

  try {
    // -- the page, its token prompt --------------------------------------------------
    const tValPage = Date.now() / 1000;   // the page's load: every time it knows is later
    const resp = await page.goto(d.url + '/');
    check('GET / serves the dashboard without a token', resp && resp.status() === 200, String(resp && resp.status()));
    check('the page has the dashboard title', (await page.title()).includes('easytorch'), await page.title());
    const asked = await waitFor(() => page.isVisible('#auth'), 10000);
    check('the page asks for a token after a 401', asked);
    check('the token field has a label', await page.evaluate(() => {
      const i = document.getElementById('token');
      return !!(i && i.labels && i.labels.length && i.labels[0].textContent.trim());
    }));
    await page.fill('#token', TOKEN);
    await page.click('#token-form button[type=submit]');
    const emptyShown = await waitFor(() => page.isVisible('#empty'), 10000);
    check('with the token, the page lists no models yet', emptyShown && !(await page.isVisible('#auth')));
    check('the token is kept in localStorage',
      (await page.evaluate(() => localStorage.getItem('easytorch.token'))) === TOKEN);

    // -- a model appears by itself ----------------------------------------------------
    const N = 256, xs = [], ys = [];
    for (let i = 0; i < N; i++) { const x = -Math.PI + 2 * Math.PI * i / (N - 1); xs.push([x]); ys.push([Math.sin(x)]); }
    await api('POST', '/v1/models', {
      name: 'sine',
      layers: [{ type: 'Linear', in_features: 1, out_features: 32 }, { type: 'Tanh' },
        { type: 'Linear', in_features: 32, out_features: 1 }],
      loss: { type: 'MSELoss' },
      optimizer: { type: 'SGD', lr: 0.05, momentum: 0.9 },
      scheduler: { type: 'StepLR', step_size: 400, gamma: 0.5 },
      seed: 0,
    });
    const card = '#models article[data-model="sine"]';
    check('a new model shows up as a card', !!(await waitFor(() => page.$(card), 10000)));
    check('the card is headed by the model name',
      (await page.textContent(`${card} h3`).catch(() => '')) === 'sine');

    // The history is fetched when the model appears: by the stream's "created" event, and
    // again if the list poll saw the model while that first fetch ran (refresh() then runs
    // once more).  Those fetches end before training starts; the count is taken after them.
    await waitFor(() => lossPolls.length >= 1, 10000);
    for (let i = 0, quiet = 0, n = lossPolls.length; quiet < 5 && i < 50; i++) {   // 0.5 s without one
      await sleep(100);
      quiet = lossPolls.length === n ? quiet + 1 : 0;
      n = lossPolls.length;
    }
    const atCreation = lossPolls.length;

    // -- train while the page is open: the chart must grow while it runs --------------
    const seen = [];
    let training = true;
    const sampler = (async () => {
      while (training) {
        const n = Number(await page.getAttribute(`${card} .plot`, 'data-points').catch(() => NaN));
        if (Number.isFinite(n) && (!seen.length || seen[seen.length - 1] !== n)) seen.push(n);
        await sleep(150);
      }
    })();
    let rounds = 0;
    const t0 = Date.now();
    while (rounds < 60 || Date.now() - t0 < 6000) {   // at least ~6 s of training: several polls
      await api('POST', '/v1/models/sine/train', { inputs: xs, targets: ys, epochs: 2, batch_size: 32, shuffle: true });
      rounds++;
      await sleep(100);
      if (rounds > 2000) break;
    }
    training = false;
    await sampler;
    const grew = seen.filter((n, i) => i > 0 && n > seen[i - 1]).length;
    check('the chart gained points while training ran', grew >= 3,
      `point counts seen during training: ${seen.slice(0, 12).join(', ')}${seen.length > 12 ? ', …' : ''}`);

    // Pushed: the step events carry the points, so the page fetched the history when the
    // model appeared and never again while it trained.
    check('the page follows the event stream', (await page.getAttribute('#status', 'data-live')) === 'stream',
      await page.textContent('#status'));
    check('the history was fetched when the model appeared', atCreation >= 1 && atCreation <= 2,
      `GET .../loss: ${atCreation} times before training (since: ${lossPolls.slice(0, 8).join(', ')})`);
    check('while training, the points came with the events (no GET .../loss)', lossPolls.length === atCreation,
      `GET .../loss: ${lossPolls.length - atCreation} times while training (since: ${lossPolls.slice(atCreation, atCreation + 8).join(', ')})`);

    // -- after training: what the page shows matches the daemon ------------------------
    const info = await api('GET', '/v1/models/sine');
    const hist = await api('GET', '/v1/models/sine/loss');
    const settled = await waitFor(async () =>
      Number(await page.getAttribute(card, 'data-step')) === info.step, 15000);
    check('the step shown matches GET /v1/models/sine', !!settled,
      `page ${await page.getAttribute(card, 'data-step')}, daemon ${info.step}`);
    const stepText = (await page.textContent(`${card} .step`)).replace(/[^0-9]/g, '');
    check('the step text matches too', Number(stepText) === info.step, `${stepText} vs ${info.step}`);
    const pts = Number(await page.getAttribute(`${card} .plot`, 'data-points'));
    check('the chart holds every point of the loss history', pts === hist.history.length,
      `${pts} points, history ${hist.history.length}`);
    const paramsText = (await page.textContent(`${card} .params`)).replace(/[^0-9]/g, '');
    check('the parameter count is shown', Number(paramsText) === info.parameters, `${paramsText} vs ${info.parameters}`);
    const lrText = await page.textContent(`${card} .lr`);
    const wantLr = typeof info.lr === 'number' ? info.lr : 0.05 * Math.pow(0.5, Math.floor(info.step / 400));
    check('the learning rate shown follows the scheduler', Math.abs(Number(lrText) - wantLr) <= 1e-3 * wantLr,
      `${lrText} vs ${wantLr}`);
    const lossText = await page.textContent(`${card} .loss`);
    check('the last loss is shown', Math.abs(Number(lossText) - info.loss) <= 1e-3 * Math.abs(info.loss),
      `${lossText} vs ${info.loss}`);
    const inked = await page.evaluate((sel) => {
      const c = document.querySelector(sel);
      const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
      return n;
    }, `${card} .plot canvas`);
    check('the chart is drawn', inked > 1000, `${inked} pixels inked`);
    check('the chart has a text alternative',
      /Loss of sine over \d+ steps/.test(await page.getAttribute(`${card} .plot`, 'aria-label')));
    await page.screenshot({ path: path.join(OUT, 'dashboard-wide.png'), fullPage: true });

    // -- log scale ---------------------------------------------------------------------------
    check('the loss is on a log scale by default', await page.isChecked('#log-scale') &&
      /log scale/.test(await page.getAttribute(`${card} .plot`, 'aria-label')));
    const before = await page.evaluate((sel) => document.querySelector(sel).toDataURL(), `${card} .plot canvas`);
    await page.uncheck('#log-scale');
    // (until the page has drawn it: the frame it is drawn in is the page's to pick)
    const linear = await waitFor(async () => !/log scale/.test(await page.getAttribute(`${card} .plot`, 'aria-label')) &&
      await page.evaluate(() => ET.idle()), 10000);
    const after = await page.evaluate((sel) => document.querySelector(sel).toDataURL(), `${card} .plot canvas`);
    check('the log-scale toggle redraws the chart on a linear scale', !!linear && before !== after);
    await page.screenshot({ path: path.join(OUT, 'dashboard-linear.png'), fullPage: true });
    await page.check('#log-scale');

    // -- the summary knows the layers of issue 13 ---------------------------------------------
    await api('POST', '/v1/models', { name: 'cnn', layers: [
      { type: 'Conv2d', in_channels: 1, out_channels: 8, kernel_size: 3, padding: 1 }, { type: 'ReLU' },
      { type: 'MaxPool2d', kernel_size: 2 }, { type: 'BatchNorm2d', num_features: 8 },
      { type: 'Flatten' }, { type: 'Linear', in_features: 128, out_features: 10 }],
      loss: 'CrossEntropyLoss', optimizer: { type: 'Adam' } });
    const cnnArch = await waitFor(async () => (await page.textContent('#models article[data-model="cnn"] .arch')
      .catch(() => '')) || '', 10000);
    check('the summary names the new layers as torch shortens them',
      cnnArch.includes('Conv2d(1→8, k=3, p=1)') && cnnArch.includes('MaxPool2d(2)') &&
      cnnArch.includes('BatchNorm2d(8)'), cnnArch);
    await api('DELETE', '/v1/models/cnn');

    // -- the list follows the daemon --------------------------------------------------------
    await api('POST', '/v1/models', { name: 'another', layers: [{ type: 'Linear', in_features: 2, out_features: 1 }],
      loss: 'MSELoss', optimizer: { type: 'Adam', lr: 0.01 } });
    check('a second model appears', !!(await waitFor(() => page.$('#models article[data-model="another"]'), 10000)));
    await api('DELETE', '/v1/models/another');
    check('a deleted model disappears',
      !!(await waitFor(async () => !(await page.$('#models article[data-model="another"]')), 10000)));


    // -- issue 17: validation, divergence, comparison, smoothing, jobs, export ---------------
    check('the page opens an EventSource on GET /v1/events', streams.length > 0, streams.slice(0, 2).join(' '));
    check('the stream is read in a Worker (stream.js), not on the page', (await page.getAttribute('#status', 'data-stream')) === 'worker' &&
      !!streamWorker() && !(await page.evaluate(() => (window.__esRecords || {}).events)),
      `status data-stream=${await page.getAttribute('#status', 'data-stream')}, workers ${workers.map((w) => w.url()).join(' ')}, ` +
      `page EventSource records ${JSON.stringify(await page.evaluate(() => window.__esRecords))}`);
    {
      // No polling while the stream is up: for 3 s of training and until the page shows every
      // step the daemon took, the page sends no request at all (any poll, of the list, a model
      // or its loss, fails this) and still draws the new points.
      const quiet = [];
      const spy = (r) => { if (!/\/v1\/events/.test(r.url())) quiet.push(new URL(r.url()).pathname); };
      const p0 = Number(await page.getAttribute(`${card} .plot`, 'data-points'));
      // (the records the stream worker's EventSource got: it reads the stream, the page does not)
      const esRecords = async () => { const w = streamWorker(); return w ? w.evaluate(() => Object.assign({}, self.__records)) : {}; };
      const rec0 = await esRecords(), msg0 = await page.evaluate(() => Object.assign({}, window.__workerMsgs));
      const t0 = Date.now();
      page.on('request', spy);
      const tEnd = Date.now() + 3000;
      let calls = 0;
      while (Date.now() < tEnd) { await api('POST', '/v1/models/sine/train', { inputs: xs, targets: ys, epochs: 1, batch_size: 64 }); calls++; }
      const quietStep = (await api('GET', '/v1/models/sine')).step;
      const caughtUp = await waitFor(async () => Number(await page.getAttribute(card, 'data-step')) === quietStep, 15000);
      page.off('request', spy);
      const p1 = Number(await page.getAttribute(`${card} .plot`, 'data-points'));
      const rec1 = await esRecords(), msg1 = await page.evaluate(() => Object.assign({}, window.__workerMsgs));
      const secs = (Date.now() - t0) / 1000;
      check('no polling while the stream is up: 3 s of training, no request, new points drawn', quiet.length === 0 && p1 > p0 && !!caughtUp,
        `${quiet.length} requests (${[...new Set(quiet)].slice(0, 4).join(', ')}), points ${p0} → ${p1}, ` +
        `page step ${await page.getAttribute(card, 'data-step')} vs daemon ${quietStep}`);
      // the page asks for ?coalesce=0.25: its steps come in "events" records, at most one per 0.25 s
      const nEv = (rec1.events || 0) - (rec0.events || 0), nStep = (rec1.step || 0) - (rec0.step || 0);
      check('the stream is coalesced: the steps come in "events" records, at most 4 a second',
        streams.some((u) => new URL(u).searchParams.get('coalesce') === '0.25') && nEv >= 1 && nStep === 0 && nEv <= secs / 0.25 + 1,
        `${nEv} "events" records and ${nStep} "step" records in ${secs.toFixed(1)} s (${calls} train calls)`);
      // the worker hands the page each record's steps per model as typed arrays
      const nMsg = msg1.events - msg0.events, nPacked = msg1.packed - msg0.packed;
      check('the worker posts the steps packed per model in Float64Arrays, one message per record',
        nMsg >= 1 && nMsg <= nEv + 1 && nPacked >= 1 && msg1.typed - msg0.typed === nPacked && msg1.unpacked === 0,
        `${nMsg} messages, ${nPacked} packed step items (${msg1.typed - msg0.typed} typed), ${msg1.unpacked} unpacked, for ${nEv} records`);
    }
    const mk = (name, extra) => api('POST', '/v1/models', Object.assign({ name,
      layers: [{ type: 'Linear', in_features: 1, out_features: 16 }, { type: 'Tanh' }, { type: 'Linear', in_features: 16, out_features: 1 }],
      loss: 'MSELoss', optimizer: { type: 'SGD', lr: 0.05 }, seed: 1 }, extra || {}));
    await mk('val');
    await mk('boom', { nonfinite: 'allow' });
    const valCard = '#models article[data-model="val"]', boomCard = '#models article[data-model="boom"]';
    const listed = await waitFor(async () => (await page.$$('#models article')).length === 3, 10000);
    const names = await page.$$eval('#models article', (as) => as.map((a) => a.dataset.model));
    check('every model is listed', listed && ['boom', 'sine', 'val'].every((n) => names.includes(n)), names.join(', '));
    // a job with validation data: the validation series appears
    const job = await api('POST', '/v1/models/val/jobs', { inputs: xs, targets: ys, epochs: 20, batch_size: 64,
      validation: { inputs: xs.slice(0, 32), targets: ys.slice(0, 32) }, eval_every: 8 });
    await waitFor(async () => (await api('GET', `/v1/models/val/jobs/${job.id}`)).state === 'done', 30000);
    const valSeen = await waitFor(async () => Number(await page.getAttribute(`${valCard} .plot`, 'data-validation')) > 0, 15000);
    const legend = await page.$$eval(`${valCard} .u-legend .u-series`, (ls) => ls.map((l) => l.textContent.trim()));
    check('the validation series appears after an evaluation', !!valSeen && legend.some((t) => /validation loss/.test(t)),
      `validation points ${await page.getAttribute(`${valCard} .plot`, 'data-validation')}, legend ${legend.join(' | ')}`);
    // a diverged model shows a warning
    await api('POST', '/v1/models/boom/batches', { inputs: [[1]], targets: [[3e38]] });
    await api('POST', '/v1/models/boom/step');
    const warned = await waitFor(() => page.isVisible(`${boomCard} .warning`), 15000);
    check('a diverged model shows a warning', warned && /diverged/i.test(await page.textContent(`${boomCard} .warning`)) &&
      (await page.textContent(`${boomCard} .state`)) === 'diverged', await page.textContent(`${boomCard} .warning`).catch(() => ''));
    // overlaying two models draws two series
    await page.check(`${card} .compare-pick`);
    await page.check(`${valCard} .compare-pick`);
    const two = await waitFor(async () => (await page.getAttribute('#compare-chart', 'data-series')) === '2', 5000);
    const cmpLegend = await page.$$eval('#compare-chart .u-legend .u-series', (ls) => ls.map((l) => l.textContent.trim()));
    const cmpInk = await page.evaluate(() => {
      const c = document.querySelector('#compare-chart canvas');
      const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0; for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++; return n;
    });
    check('overlaying two models draws two series', !!two && cmpLegend.length === 3 && cmpInk > 1000,
      `legend ${cmpLegend.join(' | ')}, ${cmpInk} pixels`);
    // the smoothing slider changes the drawn path
    const p0 = await page.evaluate((sel) => document.querySelector(sel).toDataURL(), `${card} .plot canvas`);
    // (the drawn smoothed series, read from the chart, must be the EMA of the raw one)
    const drawnSmooth = () => page.evaluate((name) => { const u = ET.state.models.get(name).chart; return { raw: u.data[2], sm: u.data[1] }; }, 'sine');
    await page.fill('#smoothing', '0.95');
    await page.dispatchEvent('#smoothing', 'input');
    await waitFor(() => page.evaluate(() => ET.idle()), 10000);
    const p1 = await page.evaluate((sel) => document.querySelector(sel).toDataURL(), `${card} .plot canvas`);
    const ds = await drawnSmooth();
    // TensorBoard's debiased EMA, computed here in double precision from the drawn raw values
    let ema = 0, k = 0, worst = 0;
    ds.raw.forEach((y, i) => {
      if (y === null) return;
      ema = ema * 0.95 + 0.05 * y; k++;
      worst = Math.max(worst, Math.abs(ds.sm[i] - ema / (1 - Math.pow(0.95, k))) / Math.abs(ema / (1 - Math.pow(0.95, k))));
    });
    check('the smoothing slider changes the drawn path (to the EMA with the new weight)', p0 !== p1 &&
      (await page.textContent('#smoothing-value')) === '0.95' && k > 100 && worst < 1e-9, `${k} points, worst relative error ${worst}`);
    await page.screenshot({ path: path.join(OUT, 'dashboard-1400x900.png'), fullPage: false });
    // the model page: a running job and its cancel button
    const big = [];
    for (let i = 0; i < 2048; i++) { const x = -3 + 6 * i / 2047; big.push([x]); }
    // (819 M steps, above the default --max-steps: a job that cannot end by itself before the
    // page cancels it, however fast the machine -- with 400 epochs, 819 k steps, it once
    // finished first)
    const long = await api('POST', '/v1/models/val/jobs', { inputs: big, targets: big.map((r) => [Math.sin(r[0])]), epochs: 400000, batch_size: 1 });
    await page.goto(d.url + '/#model=val');
    const cancelBtn = `#jobs li[data-job="${long.id}"] button.cancel:not([hidden])`;
    const tShown = Date.now();
    const shown = await waitFor(() => page.$(cancelBtn), 15000);
    console.log(`(the cancel button showed after ${Date.now() - tShown} ms)`);
    check('the model page lists the running job with a progress bar',
      !!shown && !!(await page.$(`#jobs li[data-job="${long.id}"] progress`)));
    if (shown) await page.click(cancelBtn);
    let jobNow = null;
    const cancelled = await waitFor(async () => (jobNow = await api('GET', `/v1/models/val/jobs/${long.id}`)).state === 'cancelled', 15000);
    check('the cancel button cancels a running job (the API confirms)', !!cancelled,
      jobNow && `${jobNow.state} after ${jobNow.steps_done} of ${jobNow.steps_total} steps`);
    check('the model page shows the architecture as a table',
      (await page.$$eval('#arch-table tbody tr', (rs) => rs.length)) === 3 &&
      /Linear\(1→16\)/.test(await page.textContent('#arch-table')));
    const lrInk = await waitFor(async () => Number(await page.getAttribute('#detail-chart', 'data-points')) > 0, 10000);
    check('the model page draws loss and learning-rate charts', !!lrInk && !!(await page.$('#detail-lr canvas')));
    // evaluate a pasted batch
    await page.fill('#eval-inputs', '[[0.5], [1.0]]');
    await page.fill('#eval-targets', '[[0.479], [0.841]]');
    await page.click('#eval-form button[type=submit]');
    const evText = await waitFor(async () => { const t = await page.textContent('#eval-result'); return /mse/.test(t) ? t : ''; }, 10000);
    check('the evaluate form shows the metrics', /2 rows/.test(evText || '') && /mse/.test(evText || ''), evText);
    // export of the shown series
    const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 10000 }), page.click('#export-csv')]);
    const csvText = await new Promise((res) => { let s = ''; dl.createReadStream().then((st) => { st.on('data', (c) => { s += c; }); st.on('end', () => res(s)); }); });
    check('CSV export of the shown series', /^step,train loss,train loss \(raw\),validation loss/.test(csvText) && csvText.split('\n').length > 10,
      csvText.slice(0, 80));
    await page.screenshot({ path: path.join(OUT, 'dashboard-model-1400x900.png'), fullPage: true });

    // -- zoom: a drag selects an x range, it stays while points arrive, a double-click resets --
    const range = (sel) => page.$eval(sel, (el) => ({ min: Number(el.dataset.xMin), max: Number(el.dataset.xMax),
      zoomed: el.dataset.zoomed, points: Number(el.dataset.points) }));
    // (the cancelled job may have run a few more steps: wait until the page has them all)
    let valHist = [];
    const settle = () => waitFor(async () => {
      valHist = (await api('GET', '/v1/models/val/loss')).history;
      const r = await range('#detail-chart');
      return r.points >= valHist.length && r.max === valHist[valHist.length - 1][0];
    }, 15000);
    await settle();
    const full = await range('#detail-chart');
    // (the page may hold more than the daemon's --max-history: it keeps what the events brought)
    check('unzoomed, the chart shows every step', full.min <= valHist[0][0] && full.max === valHist[valHist.length - 1][0] &&
      full.zoomed === '0', `${full.min}..${full.max}, history ${valHist[0][0]}..${valHist[valHist.length - 1][0]}`);
    const over = await page.$eval('#detail-chart .u-over', (o) => { const r = o.getBoundingClientRect(); return { x: r.x, y: r.y, w: r.width, h: r.height }; });
    await page.mouse.move(over.x + over.w * 0.25, over.y + over.h / 2);
    await page.mouse.down();
    await page.mouse.move(over.x + over.w * 0.5, over.y + over.h / 2, { steps: 4 });
    await page.mouse.move(over.x + over.w * 0.75, over.y + over.h / 2, { steps: 4 });
    await page.mouse.up();
    const z = await waitFor(async () => { const r = await range('#detail-chart'); return r.zoomed === '1' ? r : null; }, 5000);
    const span = full.max - full.min, tol = span / over.w * 2;   // two pixels
    check('dragging over the middle half zooms the x axis to it', !!z &&
      Math.abs(z.min - (full.min + 0.25 * span)) <= tol && Math.abs(z.max - (full.min + 0.75 * span)) <= tol,
      z ? `shown ${z.min.toFixed(1)}..${z.max.toFixed(1)} of ${full.min}..${full.max} (±${tol.toFixed(1)})` : 'not zoomed');
    const zlr = await range('#detail-lr');
    check('the learning-rate chart follows the zoom', !!z && Math.abs(zlr.min - z.min) <= tol && Math.abs(zlr.max - z.max) <= tol,
      `${zlr.min}..${zlr.max}`);
    // export: only the shown range
    const [dlz] = await Promise.all([page.waitForEvent('download', { timeout: 10000 }), page.click('#export-csv')]);
    const zcsv = await new Promise((res) => { let s = ''; dlz.createReadStream().then((st) => { st.on('data', (c) => { s += c; }); st.on('end', () => res(s)); }); });
    const zsteps = zcsv.trim().split('\n').slice(1).map((l) => Number(l.split(',')[0]));
    check('CSV export of a zoomed chart has only the shown steps', !!z && zsteps.length > 0 && zsteps.length < full.points &&
      zsteps.every((x) => x >= z.min && x <= z.max), `${zsteps.length} rows, ${zsteps[0]}..${zsteps[zsteps.length - 1]}`);
    // more steps arrive: the zoomed range stays
    await api('POST', '/v1/models/val/train', { inputs: xs, targets: ys, epochs: 2, batch_size: 32 });
    const grown = await waitFor(async () => { const r = await range('#detail-chart'); return r.points > full.points ? r : null; }, 15000);
    check('the zoom stays while new points arrive', !!grown && !!z && grown.min === z.min && grown.max === z.max && grown.zoomed === '1',
      grown ? `${grown.points} points, shown ${grown.min}..${grown.max}` : 'no new points');
    await settle();
    await page.mouse.dblclick(over.x + over.w * 0.5, over.y + over.h / 2);
    const reset = await waitFor(async () => { const r = await range('#detail-chart'); return r.zoomed === '0' ? r : null; }, 5000);
    const lastStep = valHist[valHist.length - 1][0];
    check('a double-click resets the zoom to every point', !!reset && reset.min === full.min && reset.max === lastStep,
      reset ? `${reset.min}..${reset.max}, last step ${lastStep}` : 'still zoomed');
    const rlr = await range('#detail-lr');
    check('... on the learning-rate chart too', rlr.zoomed === '0' && rlr.max === lastStep, `${rlr.min}..${rlr.max}`);
    await page.click('#pan-left');
    const panned = await waitFor(async () => { const r = await range('#detail-chart'); return r.zoomed === '1' ? r : null; }, 5000) ||
      await range('#detail-chart');
    check('the pan button moves the range left by a quarter', panned.zoomed === '1' &&
      Math.abs(panned.min - (full.min - (lastStep - full.min) / 4)) < 1e-6 && Math.abs(panned.max - (lastStep - (lastStep - full.min) / 4)) < 1e-6, `${panned.min}..${panned.max}`);
    await page.click('#zoom-reset');
    check('"Reset zoom" goes back to every point', !!(await waitFor(async () => (await range('#detail-chart')).zoomed === '0', 5000)));

    // -- the x axis: step, wall time, relative time (as TensorBoard) ------------------------
    // (uPlot draws axis titles on the canvas: the chart's text alternative names the axis)
    const xTitle = async () => (/x axis: (.*)$/.exec(await page.getAttribute('#detail-chart', 'aria-label')) || [])[1];
    check('the x axis is titled with its unit', (await xTitle()) === 'step (optimizer steps)', await xTitle());
    // The points' wall times: the daemon's where GET .../loss has a "time" series, else the
    // arrival of the step events that brought them (all after this page was loaded; the
    // history fetched at load has none and is left out of the time axes).
    await api('POST', '/v1/models/val/train', { inputs: xs, targets: ys, epochs: 2, batch_size: 32 });
    await settle();
    const tNow = Date.now() / 1000 + 1;
    const daemonTimes = Array.isArray((await api('GET', '/v1/models/val/loss?since=0')).time);
    for (const [mode, title] of [['relative', 'relative time (since the first step)'], ['wall', 'wall time (UTC)']]) {
      await page.selectOption('#x-axis', mode);
      const ok = await waitFor(async () => (await page.getAttribute('#detail-chart', 'data-x-mode')) === mode, 5000);
      check(`the x axis switches to ${mode} time`, !!ok && (await xTitle()) === title &&
        (await page.evaluate(() => localStorage.getItem('easytorch.xAxis'))) === mode, await xTitle());
      const r = await waitFor(async () => { const x = await range('#detail-chart'); return Number.isFinite(x.min) && Number.isFinite(x.max) ? x : null; }, 5000);
      const lo = daemonTimes ? 0 : tValPage - 1;   // (the daemon's times go back to the model's first step)
      check(`the ${mode}-time axis spans when the points arrived`, !!r && (mode === 'relative'
        ? r.min === 0 && r.max > 0 && r.max <= tNow - (daemonTimes ? 0 : tValPage)
        : r.min >= lo && r.max <= tNow && r.max > r.min),
        r ? `${r.min}..${r.max} (page opened ${tValPage.toFixed(1)}, now ${tNow.toFixed(1)})` : 'no range');
    }
    // The daemon records each step's wall time (GET .../loss "time", the step events'
    // "times"): every point the page has -- fetched at load or pushed since -- carries
    // exactly the daemon's time, and the wall axis spans the first step to the last.
    const valDoc = await api('GET', '/v1/models/val/loss');
    const valTimes = await page.evaluate(() => { const e = ET.state.models.get('val'); return { steps: e.steps, times: e.times }; });
    // (the page keeps up to 200,000 points, the daemon --max-history: compare what both have)
    const wantTimes = (valDoc.time || []).map((p) => p[1]);
    const cut = valTimes.steps.length - wantTimes.length;
    check('every point has the wall time the daemon recorded for its step (history and step events)',
      daemonTimes && wantTimes.length > 0 && cut >= 0 && JSON.stringify(valTimes.steps.slice(cut)) === JSON.stringify(valDoc.history.map((p) => p[0])) &&
      JSON.stringify(valTimes.times.slice(cut)) === JSON.stringify(wantTimes),
      `page ${valTimes.times.length} times (${valTimes.times.slice(-3)}), daemon ${wantTimes.length} (${wantTimes.slice(-3)})`);
    const wr = await range('#detail-chart');
    check('the wall-time axis runs from the first point\'s time to the last\'s', daemonTimes &&
      wr.min === valTimes.times[0] && wr.max === wantTimes[wantTimes.length - 1], `${wr.min}..${wr.max} vs ${valTimes.times[0]}..${wantTimes[wantTimes.length - 1]}`);
    await page.selectOption('#x-axis', 'step');

    // -- versions (issue 18's API): freeze, serve, roll back behind a confirmation, fork, ONNX, delete --
    await api('POST', '/v1/models', { name: 'ver', layers: [{ type: 'Linear', in_features: 1, out_features: 1 }],
      loss: 'MSELoss', optimizer: { type: 'Adam', lr: 0.1 }, seed: 0 });
    const vx = [[1], [2]], vy = [[2], [4]];
    await api('POST', '/v1/models/ver/train', { inputs: vx, targets: vy, epochs: 10 });
    await page.goto(d.url + '/#model=ver');
    const vrow = (n) => `#versions-table tbody tr[data-version="${n}"]`;
    const vbtn = (n, a) => `${vrow(n)} button[data-action="${a}"]`;
    const versionsApi = () => api('GET', '/v1/models/ver/versions');
    check('a model without versions says so', !!(await waitFor(() => page.isVisible('#versions-empty'), 10000)) &&
      (await page.getAttribute('#serving-now', 'data-serving')) === 'live');
    await waitFor(async () => Number(await page.getAttribute('#detail-chart', 'data-points')) === 10, 10000);
    await page.fill('#freeze-label', 'baseline');
    await page.click('#freeze-form button[type=submit]');
    const v1 = await waitFor(() => page.$(vrow(1)), 10000);
    let vl = await versionsApi();
    check('"Freeze a version" freezes one (the API lists it, labelled, at the step shown)', !!v1 && vl.versions.length === 1 &&
      vl.versions[0].label === 'baseline' && vl.versions[0].step === 10 &&
      /baseline/.test(await page.textContent(vrow(1))), JSON.stringify(vl.versions.map((v) => [v.version, v.label, v.step])));
    check('the freeze is a marker on the charts', !!(await waitFor(async () =>
      /version 1 frozen \(baseline\)/.test(await page.textContent('#detail-markers li[data-kind="version"]').catch(() => '')), 5000)));
    await api('POST', '/v1/models/ver/train', { inputs: vx, targets: vy, epochs: 10 });
    await page.check('#freeze-serve');
    await page.click('#freeze-form button[type=submit]');
    await waitFor(() => page.$(vrow(2)), 10000);
    vl = await versionsApi();
    check('freezing with "serve it" serves the new version', vl.serving === 2 && vl.versions[1].step === 20 &&
      !!(await waitFor(async () => (await page.getAttribute('#serving-now', 'data-serving')) === '2', 5000)) &&
      (await page.getAttribute(vrow(2), 'data-serving')) === '1' && !(await page.isVisible(vbtn(2, 'serve'))),
      `serving ${vl.serving}`);
    await page.click(vbtn(1, 'serve'));
    check('"Serve" on version 1 makes plain predict use it', !!(await waitFor(async () => (await versionsApi()).serving === 1, 5000)) &&
      !!(await waitFor(async () => (await page.getAttribute('#serving-now', 'data-serving')) === '1', 5000)));
    const st = await waitFor(async () => { const t = await page.textContent('#detail-status'); return /serving v1/.test(t) ? t : ''; }, 10000);
    check('the model page\'s status says which version serves', !!st, await page.textContent('#detail-status'));
    await page.click('#serve-live');
    check('"Serve the live model" switches back', !!(await waitFor(async () => (await versionsApi()).serving === 'live', 5000)) &&
      !!(await waitFor(async () => (await page.getAttribute('#serving-now', 'data-serving')) === 'live', 5000)));
    // roll back: a confirmation first; cancelling changes nothing
    await page.click(vbtn(1, 'rollback'));
    const asking = await waitFor(() => page.isVisible('#confirm'), 5000);
    check('"Roll back" asks for a confirmation first', !!asking && /version 1/.test(await page.textContent('#confirm-title')) &&
      (await page.evaluate(() => document.activeElement && document.activeElement.id)) === 'confirm-ok');
    const axDialog = await V.unnamedControls(page);
    check('the confirmation dialog and its buttons have accessible names', axDialog.unnamed.length === 0,
      axDialog.unnamed.slice(0, 4).join(' | '));
    const rollbackAsked = [];
    const rbSpy = (r) => { if (r.method() === 'POST' && /\/v1\/models\/ver\/(versions\/\d+\/)?rollback/.test(r.url())) rollbackAsked.push(r.url()); };
    page.on('request', rbSpy);
    await page.keyboard.press('Escape');
    await waitFor(async () => !(await page.isVisible('#confirm')), 5000);
    // (the page says "cancelled" once it has decided not to roll back)
    const saidCancelled = await waitFor(async () => /cancelled/.test(await page.textContent('#versions-result')), 10000);
    page.off('request', rbSpy);
    check('cancelling the confirmation (Escape) rolls nothing back', !!saidCancelled && rollbackAsked.length === 0 &&
      (await api('GET', '/v1/models/ver')).step === 20, `said ${await page.textContent('#versions-result')}; rollback requests ${rollbackAsked.length}`);
    await page.click(vbtn(1, 'rollback'));
    await waitFor(() => page.isVisible('#confirm'), 5000);
    await page.click('#confirm-ok');
    const rolled = await waitFor(async () => (await api('GET', '/v1/models/ver')).step === 10, 10000);
    const rpts = await waitFor(async () => Number(await page.getAttribute('#detail-chart', 'data-points')) === 10, 10000);
    check('confirming rolls the live model back (the API says step 10; the chart drops the later steps)', !!rolled && !!rpts,
      `${await page.textContent('#versions-result')}; chart ${await page.getAttribute('#detail-chart', 'data-points')} points`);
    // fork version 2 under a name given in the dialog
    await page.click(vbtn(2, 'fork'));
    await waitFor(() => page.isVisible('#confirm-input'), 5000);
    await page.fill('#confirm-input', 'ver-fork');
    await page.click('#confirm-ok');
    const forked = await waitFor(async () => { try { return await api('GET', '/v1/models/ver-fork'); } catch (e) { return null; } }, 10000);
    check('"Fork" makes a new model from the version', !!forked && forked.step === 20 &&
      !!(await waitFor(() => page.$('#versions-result a[href="#model=ver-fork"]'), 5000)), forked ? `step ${forked.step}` : 'no fork');
    // ONNX: the downloaded file is the daemon's export of that version, byte for byte
    const [onnxDl] = await Promise.all([page.waitForEvent('download', { timeout: 10000 }), page.click(vbtn(1, 'onnx'))]);
    const onnxBytes = await new Promise((res) => { const parts = []; onnxDl.createReadStream().then((st) => { st.on('data', (c) => parts.push(c)); st.on('end', () => res(Buffer.concat(parts))); }); });
    const want = Buffer.from(await (await fetch(d.url + '/v1/models/ver/versions/1/export?format=onnx', { headers: auth })).arrayBuffer());
    check('"ONNX" downloads the version as the daemon exports it', onnxBytes.length > 0 && onnxBytes.equals(want) &&
      onnxDl.suggestedFilename() === 'ver-v1.onnx', `${onnxBytes.length} bytes, ${onnxDl.suggestedFilename()}`);
    // delete: behind a confirmation; the serving version is refused (409) and stays
    await page.click(vbtn(2, 'delete'));
    await waitFor(() => page.isVisible('#confirm'), 5000);
    await page.click('#confirm-ok');
    const gone = await waitFor(async () => !(await page.$(vrow(2))), 10000);
    check('"Delete" (confirmed) removes the version', !!gone && (await versionsApi()).versions.map((v) => v.version).join() === '1');
    await api('PATCH', '/v1/models/ver', { serving: 1 });
    await page.reload();
    await waitFor(async () => (await page.getAttribute('#serving-now', 'data-serving')) === '1', 10000);
    expectedRefusals.push(['/v1/models/ver/versions/1', 409]);
    await page.click(vbtn(1, 'delete'));
    await waitFor(() => page.isVisible('#confirm'), 5000);
    await page.click('#confirm-ok');
    const refused = await waitFor(async () => { const t = await page.textContent('#versions-result'); return /serving/.test(t) ? t : ''; }, 10000);
    check('deleting the serving version shows the daemon\'s refusal and keeps it', !!refused &&
      (await page.getAttribute('#versions-result', 'data-state')) === 'error' && (await versionsApi()).versions.length === 1, refused);
    await page.screenshot({ path: path.join(OUT, 'dashboard-versions-1400x900.png'), fullPage: true });
    await api('DELETE', '/v1/models/ver-fork');
    await api('DELETE', '/v1/models/ver');
    await page.goto(d.url + '/');
    // -- the token survives a reload ------------------------------------------------------------
    await page.reload();
    const back = await waitFor(() => page.$(card), 10000);
    check('after a reload the saved token is used', !!back && !(await page.isVisible('#auth')));
    const headings = await page.evaluate(() => ({
      h1: document.querySelectorAll('h1').length, h2: document.querySelectorAll('h2').length,
      h3: document.querySelectorAll('#models h3').length,
      unlabelled: [...document.querySelectorAll('input, select')].filter((e) => !e.labels || !e.labels.length).length,
    }));
    check('headings and labels are in place', headings.h1 === 1 && headings.h3 === 3 && headings.unlabelled === 0,
      JSON.stringify(headings));
    await waitFor(async () => Number(await page.getAttribute(`${card} .plot`, 'data-series')) > 0 && await page.evaluate(() => ET.idle()), 10000);
    const axOverview = await V.unnamedControls(page);
    check('every control, link and chart of the overview has an accessible name (Chromium\'s accessibility tree)',
      axOverview.count >= 15 && axOverview.unnamed.length === 0, `${axOverview.count} checked; unnamed: ${axOverview.unnamed.slice(0, 4).join(' | ')}`);
    // keyboard: Tab reaches the skip link, every header control and each card's compare box
    // and link, in reading order; the skip link shows when focused
    const path1 = await V.tabPath(page, 24);
    const want1 = ['a.skip', '#home', '#log-scale', '#x-axis', '#smoothing', '#interval', '#show-token',
      'input.compare-pick@boom', 'a@boom', 'input.compare-pick@sine', 'a@sine', 'input.compare-pick@val', 'a@val'];
    const at1 = want1.map((w) => path1.indexOf(w));
    check('the keyboard reaches every control in reading order (Tab)', at1.every((i, k) => i >= 0 && (k === 0 || i > at1[k - 1])),
      path1.join(' → '));
    await page.focus('a.skip');
    const skipBox = await page.$eval('a.skip', (a) => { const r = a.getBoundingClientRect(); return { x: r.x, w: r.width }; });
    check('the skip link shows when it has the focus', skipBox.x >= 0 && skipBox.w > 0, JSON.stringify(skipBox));
    // ... and operates them: arrow keys move the smoothing slider, Space ticks a compare box,
    // Enter on a model's name opens its page
    const sm0 = await page.inputValue('#smoothing');
    await page.focus('#smoothing');
    await page.keyboard.press('ArrowLeft');
    const sm1 = await page.inputValue('#smoothing');
    check('the arrow keys move the smoothing slider (and the value shown follows)', Math.abs(Number(sm0) - Number(sm1) - 0.01) < 1e-9 &&
      (await page.textContent('#smoothing-value')) === Number(sm1).toFixed(2), `${sm0} → ${sm1}`);
    await page.keyboard.press('ArrowRight');
    await page.focus(`${card} .compare-pick`);
    await page.keyboard.press('Space');
    const picked = await waitFor(async () => (await page.getAttribute('#compare-chart', 'data-series')) === '1' && await page.isVisible('#compare'), 5000);
    await page.keyboard.press('Space');
    const unpicked = await waitFor(async () => !(await page.isVisible('#compare')), 5000);
    check('Space on a compare box overlays the model, and again removes it', !!picked && !!unpicked);
    await page.focus(`${card} .name a`);
    await page.keyboard.press('Enter');
    const opened = await waitFor(async () => (await page.isVisible('#detail')) && (await page.textContent('#detail-title')) === 'sine', 5000);
    check('Enter on a model\'s name opens its page', !!opened, await page.evaluate(() => location.hash));
    await waitFor(async () => Number(await page.getAttribute('#detail-chart', 'data-points')) > 0 && await page.evaluate(() => ET.idle()), 10000);
    const axDetail = await V.unnamedControls(page);
    check('every control, table and chart of the model page has an accessible name',
      axDetail.count >= 15 && axDetail.unnamed.length === 0, `${axDetail.count} checked; unnamed: ${axDetail.unnamed.slice(0, 4).join(' | ')}`);
    const path2 = await V.tabPath(page, 40);
    const want2 = ['#home', '#pan-left', '#pan-right', '#zoom-reset', '#export-csv', '#export-json', '#detail-chart',
      '#freeze-label', '#freeze-serve', '#eval-inputs', '#eval-targets'];
    const at2 = want2.map((w) => path2.indexOf(w));
    check('on the model page the keyboard reaches the chart tools, the chart and the forms in reading order',
      at2.every((i, k) => i >= 0 && (k === 0 || i > at2[k - 1])), path2.join(' → '));
    // the chart itself: ← pans by a quarter, Escape goes back to every point
    const kr0 = await range('#detail-chart');
    await page.focus('#detail-chart');
    await page.keyboard.press('ArrowLeft');
    const kr1 = await waitFor(async () => { const r = await range('#detail-chart'); return r.zoomed === '1' ? r : null; }, 5000);
    const kspan = kr0.max - kr0.min;
    check('← on the focused chart pans it left by a quarter', !!kr1 && Math.abs(kr1.min - (kr0.min - kspan / 4)) < 1e-6 &&
      Math.abs(kr1.max - (kr0.max - kspan / 4)) < 1e-6, kr1 ? `${kr0.min}..${kr0.max} → ${kr1.min}..${kr1.max}` : 'not moved');
    await page.keyboard.press('Escape');
    check('Escape on the chart resets the zoom', !!(await waitFor(async () => (await range('#detail-chart')).zoomed === '0', 5000)));
    await page.goto(d.url + '/');

    // -- the stream survives a daemon restart: EventSource reconnects with Last-Event-ID ------
    await page.goto(d.url + '/');
    await waitFor(async () => (await page.getAttribute('#status', 'data-live')) === 'stream', 10000);
    // (an event first: the id EventSource sends back is the last one it received)
    await api('POST', '/v1/models/sine/train', { inputs: xs, targets: ys, epochs: 1, batch_size: 64 });
    const beforeStep = (await api('GET', '/v1/models/sine')).step;
    await waitFor(async () => Number(await page.getAttribute(card, 'data-step')) === beforeStep, 10000);
    const port = new URL(d.url).port;
    const resumed = [], reading = [];
    // (allHeaders: request.headers() leaves out what the network stack adds, as Last-Event-ID;
    // it answers later, so the answers are awaited before they are judged)
    const idSpy = (r) => {
      if (/\/v1\/events/.test(r.url()) && r.status() === 200)
        reading.push(r.request().allHeaders().then((h) => resumed.push(h['last-event-id'] || '(none)'), () => resumed.push('(unreadable)')));
    };
    page.on('response', idSpy);
    restarting = true;
    d.proc.removeAllListeners('exit');
    d.proc.kill('SIGTERM');
    await waitFor(() => d.proc.exitCode !== null || d.proc.signalCode !== null, 15000);
    const down = await waitFor(async () => (await page.getAttribute('#status', 'data-live')) !== 'stream', 10000);
    check('the page notices the daemon went away', !!down, await page.textContent('#status'));
    oldDirs.push(d.dir);
    d = await B.startDaemon([...daemonArgs, '--listen', '127.0.0.1:' + port, '--data-dir', path.join(d.dir, 'data')], TOKEN);
    await B.ready(d);
    const reconnected = await waitFor(async () => (await page.getAttribute("#status", "data-live")) === "stream", 30000);
    page.off('response', idSpy);
    await Promise.all(reading);
    check("the EventSource reconnects by itself, sending Last-Event-ID", !!reconnected && resumed.length > 0 && /^\d+$/.test(resumed[0]),
      `streams answered after the restart: ${resumed.length}, Last-Event-ID ${resumed.join(', ')}`);
    await api('POST', '/v1/models/sine/train', { inputs: xs, targets: ys, epochs: 2, batch_size: 32 });
    const afterStep = (await api('GET', '/v1/models/sine')).step;
    const follows = await waitFor(async () => Number(await page.getAttribute(card, 'data-step')) === afterStep, 15000);
    check('after the restart the page follows the new run', !!follows, `page ${await page.getAttribute(card, 'data-step')}, daemon ${afterStep}`);
    restarting = false;

    // -- without Workers: the page reads the stream itself (dashboard_stream.mjs) -------------
    for (const how of ['none', 'unsupported']) {
      await S.withoutWorkers({ browser, url: d.url, token: TOKEN, card, watch, how, train: async () => {
        await api('POST', '/v1/models/sine/train', { inputs: xs, targets: ys, epochs: 3, batch_size: 32 });
        return (await api('GET', '/v1/models/sine')).step;
      } });
    }

    // -- without EventSource (or a proxy that buffers the stream): the page polls -----------------
    const noEs = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    await noEs.addInitScript((t) => { delete window.EventSource; localStorage.setItem('easytorch.token', t); }, TOKEN);
    const np = await noEs.newPage();
    watch(np, ' (no EventSource)');
    const npPolls = [], npSince = [];
    np.on('request', (r) => {
      const u = new URL(r.url());
      if (u.pathname === '/v1/models') npPolls.push(Date.now());
      if (u.pathname === '/v1/models/sine/loss') npSince.push(u.searchParams.get('since'));
    });
    await np.goto(d.url + '/');
    await waitFor(() => np.$(card), 10000);
    // three rounds of training, each followed until the page shows the daemon's step (which
    // only a poll can bring it)
    let npStep = null, npCaught = true;
    for (let i = 0; i < 3; i++) {
      await api('POST', '/v1/models/sine/train', { inputs: xs, targets: ys, epochs: 2, batch_size: 32 });
      npStep = (await api('GET', '/v1/models/sine')).step;
      npCaught = npCaught && !!(await waitFor(async () => Number(await np.getAttribute(card, 'data-step')) === npStep, 20000));
    }
    const ks = npSince.filter((k) => k !== null).map(Number);
    check('without EventSource the page polls and keeps up, asking only for new points (?since=K, K never going back and growing)',
      (await np.getAttribute('#status', 'data-live')) === 'polling' && npPolls.length >= 3 && !!npCaught &&
      ks.length >= 2 && ks.every((k, i) => k > 0 && (i === 0 || k >= ks[i - 1])) && ks[ks.length - 1] > ks[0],
      `${npPolls.length} polls, since ${npSince.join(', ')}, page step ${await np.getAttribute(card, 'data-step')} vs ${npStep}`);
    await noEs.close();

    // -- a phone ----------------------------------------------------------------------------
    const phone = await browser.newContext({ viewport: { width: 400, height: 800 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    const pp = await phone.newPage();
    watch(pp, ' (phone)');
    await pp.goto(d.url + '/');
    await pp.evaluate((t) => localStorage.setItem('easytorch.token', t), TOKEN);
    await pp.reload();
    const phoneCard = await waitFor(() => pp.$(card), 10000);
    await waitFor(async () => Number(await pp.getAttribute(`${card} .plot`, 'data-points')) > 0, 10000);
    const overflow = await pp.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    check('on a phone the page fits the width', !!phoneCard && overflow <= 0, `overflow ${overflow}px`);
    await pp.screenshot({ path: path.join(OUT, 'dashboard-400x800.png'), fullPage: true });
    const phoneShot = V.pngSize(path.join(OUT, 'dashboard-400x800.png'));
    check('the 400×800 screenshot is saved (full page, 2× pixels)', !!phoneShot && phoneShot.width === 800 && phoneShot.height >= 1600,
      JSON.stringify(phoneShot));
    // the model page on the phone: the charts, tables and forms fit too (the versions table scrolls in its box)
    await pp.goto(d.url + '/#model=sine');
    const phoneDetail = await waitFor(async () => Number(await pp.getAttribute('#detail-chart', 'data-points')) > 0 &&
      await pp.evaluate(() => ET.idle()), 10000);
    const detailOverflow = await V.overflowX(pp);
    check('on a phone the model page fits the width', !!phoneDetail && detailOverflow <= 0, `overflow ${detailOverflow}px`);
    await pp.screenshot({ path: path.join(OUT, 'dashboard-model-400x800.png'), fullPage: true });
    await phone.close();

    // -- the system's dark theme, a 4K screen; the error checks can fail --------------------------
    await V.themesAndScreens({ browser, url: d.url, token: TOKEN, card, page, watch, out: OUT, check, waitFor });
    await V.offScreenCards({ browser, url: d.url, token: TOKEN, watch, check, waitFor, api });
    check('nothing is loaded from anywhere but the daemon', foreign.length === 0, foreign.slice(0, 5).join(' '));
    check('no script errors', errors.length === 0, errors.concat(notFound).slice(0, 5).join(' | '));
    const wide = V.pngSize(path.join(OUT, 'dashboard-1400x900.png'));
    check('the 1400×900 screenshot is saved', !!wide && wide.width === 1400 && wide.height === 900, JSON.stringify(wide));
    console.log(`screenshots in ${OUT}: dashboard-wide.png, dashboard-linear.png, dashboard-1400x900.png, dashboard-model-1400x900.png, ` +
      'dashboard-versions-1400x900.png, dashboard-400x800.png, dashboard-model-400x800.png, dashboard-dark-1400x900.png, ' +
      'dashboard-model-dark-1400x900.png, dashboard-3840x2160.png');
  } catch (e) {
    check('the test ran to its end', false, e.stack || String(e));
  } finally {
    await browser.close().catch(() => {});
    await B.stopDaemon(d);
    for (const dir of oldDirs) rmSync(dir, { recursive: true, force: true });
  }
  finish();
}

main().catch((e) => { check('the test ran', false, e.stack || String(e)); finish(); });
