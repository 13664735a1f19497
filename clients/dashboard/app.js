// easytorch dashboard: lists the daemon's models, charts their training and validation loss,
// learning rate and markers (uPlot, charts.js), compares models on one chart, and per model
// shows its architecture, optimizer, jobs (with cancel) and an evaluate form.  Plain browser
// JavaScript, no build step, nothing loaded from elsewhere.
// Live by push: it follows GET /v1/events (EventSource) and fetches only what is new
// (GET /v1/models/{name}/loss?since=K) when an event says a model moved; when the stream is
// unavailable it polls GET /v1/models every interval instead.
'use strict';

(function () {
  const C = window.ETCharts;
  const TOKEN_KEY = 'easytorch.token';
  const LOG_KEY = 'easytorch.logScale';
  const INTERVAL_KEY = 'easytorch.interval';
  const SMOOTH_KEY = 'easytorch.smoothing';
  const MAX_POINTS = 200000;   // per model; the daemon keeps 100000 by default

  const $ = (id) => document.getElementById(id);
  const els = {
    status: $('status'), auth: $('auth'), authReason: $('auth-reason'), tokenForm: $('token-form'),
    token: $('token'), forget: $('forget-token'), showToken: $('show-token'),
    models: $('models'), empty: $('empty'), logScale: $('log-scale'), interval: $('interval'),
    template: $('model-card'), smoothing: $('smoothing'), smoothingValue: $('smoothing-value'),
    overview: $('overview'), detail: $('detail'), compare: $('compare'),
    compareChart: $('compare-chart'), compareNames: $('compare-names'),
  };

  const store = {
    get(k) { try { return window.localStorage.getItem(k); } catch (e) { return null; } },
    set(k, v) { try { window.localStorage.setItem(k, v); } catch (e) { /* private mode */ } },
    del(k) { try { window.localStorage.removeItem(k); } catch (e) { /* private mode */ } },
  };

  const state = {
    token: store.get(TOKEN_KEY) || '',
    logScale: store.get(LOG_KEY) !== '0',
    interval: Number(store.get(INTERVAL_KEY) || 1000),
    smoothing: Number(store.get(SMOOTH_KEY) ?? 0.6),
    xTime: false,
    models: new Map(),     // name -> entry
    compare: new Set(),    // names overlaid on the comparison chart
    timer: null, polling: false, needToken: false,
    live: 'connecting',    // 'stream' | 'polling' | 'connecting'
    es: null, dirty: new Set(), frame: 0,
    detail: null,          // the model page's name
  };
  if (!(state.smoothing >= 0 && state.smoothing < 1)) state.smoothing = 0.6;

  class HttpError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path, method, body) {
    const headers = { Accept: 'application/json' };
    if (state.token) headers.Authorization = 'Bearer ' + state.token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await fetch(path, { method: method || 'GET', headers, cache: 'no-store',
        body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new HttpError(0, 'cannot reach the daemon (' + e.message + ')');
    }
    let j = null;
    try { j = await res.json(); } catch (e) { j = null; }
    if (!res.ok) {
      const msg = j && typeof j.error === 'string' ? j.error : res.statusText;
      throw new HttpError(res.status, msg || ('HTTP ' + res.status));
    }
    return j;
  }

  // ---- formatting -----------------------------------------------------------
  function fmtNum(v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) return '–';
    if (!Number.isFinite(v)) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(digits - 1).replace('e+', 'e');
    return Number(v.toPrecision(digits)).toString();
  }

  // torch's reprs, shortened: Conv2d(1→8, k=3, p=1), BatchNorm1d(200), Embedding(27, 10).
  const SHORT = { kernel_size: 'k', stride: 's', padding: 'p', dilation: 'd', groups: 'g' };
  function tup(v) { return Array.isArray(v) ? v.join('×') : String(v); }
  function rest(l, known) {
    return Object.keys(l).filter((k) => k !== 'type' && !known.includes(k))
      .map((k) => (SHORT[k] || k) + '=' + (SHORT[k] ? tup(l[k]) : JSON.stringify(l[k])));
  }
  function call(name, first, more) { return name + '(' + first.concat(more).join(', ') + ')'; }
  function describeLayer(l) {
    if (!l || typeof l !== 'object') return String(l);
    const t = l.type;
    if (t === 'Linear') return 'Linear(' + l.in_features + '→' + l.out_features + ')';
    if (/^Conv(Transpose)?[12]d$/.test(t))
      return call(t, [l.in_channels + '→' + l.out_channels], rest(l, ['in_channels', 'out_channels']));
    if (/^BatchNorm[12]d$/.test(t)) return call(t, [String(l.num_features)], rest(l, ['num_features']));
    if (t === 'LayerNorm') return call(t, [tup(l.normalized_shape)], rest(l, ['normalized_shape']));
    if (t === 'GroupNorm')
      return call(t, [l.num_groups + ', ' + l.num_channels], rest(l, ['num_groups', 'num_channels']));
    if (t === 'Embedding' || t === 'EmbeddingBag')
      return call(t, [l.num_embeddings + ', ' + l.embedding_dim], rest(l, ['num_embeddings', 'embedding_dim']));
    if (/^(Max|Avg)Pool[12]d$/.test(t)) return call(t, [tup(l.kernel_size)], rest(l, ['kernel_size']));
    if (/^Adaptive(Avg|Max)Pool[12]d$/.test(t))
      return call(t, [Array.isArray(l.output_size) ? l.output_size.map((v) => (v === null ? '·' : v)).join('×')
        : String(l.output_size)], rest(l, ['output_size']));
    const args = rest(l, []);
    return t + (args.length ? '(' + args.join(', ') + ')' : '');
  }
  function typeName(x) { return !x ? '' : typeof x === 'string' ? x : (x.type || ''); }
  function describeSpec(spec) {
    if (!spec || !Array.isArray(spec.layers)) return '';
    const parts = [spec.layers.map(describeLayer).join(' · ')];
    const extra = [typeName(spec.loss), typeName(spec.optimizer), typeName(spec.scheduler)].filter(Boolean);
    if (extra.length) parts.push(extra.join(', '));
    return parts.join(' — ');
  }

  // ---- one model's data -------------------------------------------------------
  function newEntry(name) {
    const card = els.template.content.firstElementChild.cloneNode(true);
    const q = (sel) => card.querySelector(sel);
    const id = 'model-' + name.replace(/[^A-Za-z0-9_-]/g, '_');
    card.id = id;
    card.dataset.model = name;
    card.setAttribute('aria-labelledby', id + '-name');
    const link = q('.name a');
    link.textContent = name;
    link.href = '#model=' + encodeURIComponent(name);
    q('.name').id = id + '-name';
    const pick = q('.compare-pick');
    pick.setAttribute('aria-label', 'Compare ' + name);
    pick.checked = state.compare.has(name);
    pick.addEventListener('change', () => {
      if (pick.checked) state.compare.add(name); else state.compare.delete(name);
      renderCompare();
    });
    const e = {
      name, card, since: null, step: null, loss: null, info: null, infoStep: null, summary: null,
      steps: [], losses: [], lrs: [], times: [], val: [], markers: [], chart: null, chartKey: '',
      el: { arch: q('.arch'), step: q('.step'), loss: q('.loss'), lr: q('.lr'), params: q('.params'),
        plot: q('.plot'), caption: q('.caption'), state: q('.state'), warning: q('.warning') },
    };
    return e;
  }

  function resetEntry(e) {
    Object.assign(e, { since: null, step: null, info: null, infoStep: null, steps: [], losses: [],
      lrs: [], times: [], val: [], markers: [] });
  }

  // Appends what GET .../loss?since=K answered.
  function absorb(e, res) {
    const hist = res.history || [], lrs = res.lr || [], times = res.time || [];
    for (let i = 0; i < hist.length; i++) {
      const s = Number(hist[i][0]);
      if (e.steps.length && s <= e.steps[e.steps.length - 1]) continue;
      e.steps.push(s);
      e.losses.push(hist[i][1] === null ? NaN : Number(hist[i][1]));
      e.lrs.push(lrs[i] && lrs[i][1] !== null ? Number(lrs[i][1]) : NaN);
      e.times.push(times[i] && times[i][1] !== null ? Number(times[i][1]) : NaN);
    }
    if (e.steps.length > MAX_POINTS) {
      const cut = e.steps.length - MAX_POINTS / 2;
      for (const k of ['steps', 'losses', 'lrs', 'times']) e[k].splice(0, cut);
    }
    for (const v of res.validation || []) if (!e.val.some((w) => w.step === v.step && w.job === v.job)) e.val.push(v);
    for (const m of res.markers || []) if (!e.markers.some((w) => w.step === m.step && w.time === m.time && w.kind === m.kind)) e.markers.push(m);
    if (e.steps.length) e.since = e.steps[e.steps.length - 1];
    if (typeof res.step === 'number') e.step = res.step;
  }

  async function refreshModel(e, summary) {
    const path = 'v1/models/' + encodeURIComponent(e.name);
    if (summary && e.step !== null && summary.step < e.step) resetEntry(e);  // deleted and made again
    const step = summary ? summary.step : e.step;
    if (!e.info || e.infoStep !== step || (summary && summary.status !== (e.info && e.info.status))) {
      e.info = await api(path);
      e.infoStep = e.info.step;
    }
    if (e.since === null || e.info.step !== e.step || !e.steps.length) {
      const res = await api(path + '/loss' + (e.since === null ? '' : '?since=' + e.since));
      absorb(e, res);
    }
    e.loss = e.info.loss ?? (e.losses.length ? e.losses[e.losses.length - 1] : null);
    if (typeof e.info.step === 'number' && e.info.step > (e.step ?? -1)) e.step = e.info.step;
    state.dirty.add(e.name);
    paint();
  }

  // ---- drawing: batched per animation frame, only what changed ------------------
  function paint() {
    if (state.frame) return;
    state.frame = requestAnimationFrame(() => {
      state.frame = 0;
      for (const name of state.dirty) {
        const e = state.models.get(name);
        if (e) render(e);
      }
      state.dirty.clear();
      renderCompare();
      if (state.detail) renderDetail();
    });
  }

  function xs(e) { return state.xTime ? e.times : e.steps; }

  // Series for a model's chart: smoothed train loss, raw train loss (faint), the validation
  // loss and every other evaluated metric (accuracy etc. on the right axis).
  function seriesOf(e) {
    const metrics = [];
    for (const v of e.val) for (const k of Object.keys(v.metrics || {})) if (!metrics.includes(k)) metrics.push(k);
    return metrics;
  }

  function chartData(e, metrics) {
    const x = xs(e).slice();
    const raw = e.losses.map((y) => (Number.isFinite(y) && (!state.logScale || y > 0) ? y : null));
    const sm = C.smooth(raw.map((y) => (y === null ? NaN : y)), state.smoothing);
    const cols = [x, sm, raw];
    const index = new Map();
    e.steps.forEach((s, i) => index.set(s, i));
    for (const k of metrics) {
      const col = new Array(x.length).fill(null);
      for (const v of e.val) {
        const i = index.get(v.step);
        const y = v.metrics && v.metrics[k];
        if (i !== undefined && typeof y === 'number' && (k !== 'loss' || !state.logScale || y > 0)) col[i] = y;
      }
      cols.push(col);
    }
    return cols;
  }

  function markerXs(e) {
    const index = new Map();
    e.steps.forEach((s, i) => index.set(s, i));
    return e.markers.map((m) => {
      let x = m.step;
      if (state.xTime) { const i = index.get(m.step); x = i !== undefined ? e.times[i] : Date.parse(m.time) / 1000; }
      return { x, kind: m.kind };
    });
  }

  function buildChart(e, el, height, withMarkers, key) {
    const metrics = seriesOf(e);
    const series = [
      { label: 'train loss', color: C.PALETTE[0], width: 2 },
      { label: 'train loss (raw)', color: C.PALETTE[0] + '55', width: 1 },
    ];
    metrics.forEach((k, i) => series.push({ label: 'validation ' + k, color: C.PALETTE[1 + (i % 6)], width: 1.5,
      points: true, scale: k === 'loss' ? 'y' : 'y2' }));
    const hasY2 = metrics.some((k) => k !== 'loss');
    const u = C.make({ el, series, log: state.logScale, time: state.xTime, height,
      xLabel: state.xTime ? 'wall time (UTC)' : 'step (optimizer steps)',
      yLabel: 'loss' + (state.logScale ? ' (log scale)' : ''), y2Label: hasY2 ? 'metric' : null,
      markers: withMarkers ? () => markerXs(e) : null, sync: 'm-' + e.name });
    u._et = { key, metrics: metrics.join(',') };
    return u;
  }

  function chartKey() { return [state.logScale, state.xTime].join('/'); }

  function render(e) {
    const { el, card } = e;
    const info = e.info || {};
    const step = e.step ?? 0;
    el.step.textContent = step.toLocaleString('en-US');
    el.loss.textContent = fmtNum(e.loss, 4);
    el.lr.textContent = fmtNum(typeof info.lr === 'number' ? info.lr : null, 3);
    el.params.textContent = typeof info.parameters === 'number' ? info.parameters.toLocaleString('en-US') : '–';
    el.arch.textContent = describeSpec(info.spec);
    const st = modelState(e);
    el.state.textContent = st;
    el.state.dataset.state = st;
    card.dataset.status = info.status || 'ok';
    el.warning.hidden = info.status !== 'diverged';
    el.warning.textContent = info.status === 'diverged'
      ? 'Diverged: a parameter is not finite (' + ((info.nonfinite && info.nonfinite.last && info.nonfinite.last.reason) || 'non-finite values') + '). Predictions are NaN until the parameters are set again.'
      : '';
    card.dataset.step = String(step);
    const metrics = seriesOf(e).join(',');
    if (!e.chart || e.chart._et.key !== chartKey() || e.chart._et.metrics !== metrics) {
      if (e.chart) e.chart.destroy();
      el.plot.textContent = '';
      e.chart = buildChart(e, el.plot, 170, true, chartKey());
    }
    C.fit(e.chart, el.plot);
    e.chart.setData(chartData(e, seriesOf(e)));
    const n = e.steps.length;
    el.plot.dataset.points = String(n);
    el.plot.dataset.validation = String(e.val.length);
    el.plot.dataset.series = String(e.chart.series.length - 1);
    el.plot.setAttribute('aria-label', n
      ? 'Loss of ' + e.name + ' over ' + n + ' steps' + (state.logScale ? ' (log scale)' : '') + ', last ' + fmtNum(e.losses[n - 1], 4) +
        (e.val.length ? '; ' + e.val.length + ' validation points' : '')
      : 'Loss of ' + e.name + ': no training steps yet');
    const trunc = e.markers.filter((m) => m.kind === 'truncated').length;
    el.caption.textContent = n
      ? n.toLocaleString('en-US') + ' points, steps ' + e.steps[0].toLocaleString('en-US') + '–' + e.steps[n - 1].toLocaleString('en-US') +
        (state.logScale ? ', log scale' : '') + (trunc ? ' · older history dropped by the daemon' : '')
      : 'No loss yet: the chart fills as the model trains.';
  }

  function modelState(e) {
    const info = e.info || {};
    if (info.status === 'diverged') return 'diverged';
    if ((e.jobs || []).some((j) => j.state === 'running' || j.state === 'queued')) return 'training';
    if (e.lastMoved && Date.now() - e.lastMoved < 5000) return 'training';
    return 'idle';
  }

  // ---- the comparison chart: one series per picked model ---------------------------
  let compareChart = null, compareKey = '';
  function renderCompare() {
    const names = [...state.compare].filter((n) => state.models.has(n)).sort();
    els.compare.hidden = names.length === 0;
    els.compareChart.dataset.series = String(names.length);
    if (!names.length) { if (compareChart) { compareChart.destroy(); compareChart = null; } return; }
    els.compareNames.textContent = '(' + names.join(', ') + ')';
    const key = chartKey() + '|' + names.join(',');
    if (!compareChart || compareKey !== key) {
      if (compareChart) compareChart.destroy();
      els.compareChart.textContent = '';
      compareChart = C.make({ el: els.compareChart, height: 220, log: state.logScale, time: state.xTime,
        xLabel: state.xTime ? 'wall time (UTC)' : 'step (optimizer steps)',
        yLabel: 'train loss, smoothed' + (state.logScale ? ' (log scale)' : ''),
        series: names.map((n, i) => ({ label: n, color: C.PALETTE[i % C.PALETTE.length], width: 2 })) });
      compareKey = key;
    }
    // one x for all: the union of the models' x values
    const all = new Set();
    for (const n of names) for (const x of xs(state.models.get(n))) all.add(x);
    const x = [...all].filter(Number.isFinite).sort((a, b) => a - b);
    const pos = new Map(x.map((v, i) => [v, i]));
    const cols = [x];
    for (const n of names) {
      const e = state.models.get(n);
      const sm = C.smooth(e.losses.map((y) => (Number.isFinite(y) && (!state.logScale || y > 0) ? y : NaN)), state.smoothing);
      const col = new Array(x.length).fill(null);
      xs(e).forEach((v, i) => { const p = pos.get(v); if (p !== undefined) col[p] = sm[i]; });
      cols.push(col);
    }
    C.fit(compareChart, els.compareChart);
    compareChart.setData(cols);
    els.compareChart.setAttribute('aria-label', 'Smoothed training loss of ' + names.join(', '));
  }

  // ---- the model page ---------------------------------------------------------------
  const D = {
    title: $('detail-title'), status: $('detail-status'), warning: $('detail-warning'),
    chartEl: $('detail-chart'), lrEl: $('detail-lr'), markers: $('detail-markers'),
    arch: document.querySelector('#arch-table tbody'), optim: $('optim'), jobs: $('jobs'),
    jobsEmpty: $('jobs-empty'), evalForm: $('eval-form'), evalInputs: $('eval-inputs'),
    evalTargets: $('eval-targets'), evalResult: $('eval-result'),
    chart: null, lr: null, key: '', params: null, jobsAt: 0,
  };

  function route() {
    const m = /^#model=(.+)$/.exec(location.hash);
    const name = m ? decodeURIComponent(m[1]) : null;
    state.detail = name;
    els.overview.hidden = !!name;
    els.detail.hidden = !name;
    if (D.chart) { D.chart.destroy(); D.chart = null; }
    if (D.lr) { D.lr.destroy(); D.lr = null; }
    D.key = ''; D.params = null; D.evalResult.textContent = '';
    jobRows.clear(); D.jobs.textContent = '';
    if (name) {
      D.title.textContent = name;
      document.title = name + ' · easytorch dashboard';
      refreshJobs(name);
      const e = state.models.get(name);
      if (e) { state.dirty.add(name); paint(); }
    } else {
      document.title = 'easytorch dashboard';
      for (const n of state.models.keys()) state.dirty.add(n);
      paint();
    }
  }

  // Output shapes of the layers that set one (features flow), parameters from the
  // parameter names and shapes the daemon gives.
  function layerRows(info, params) {
    const rows = [];
    let feat = null;
    (info.spec.layers || []).forEach((l, i) => {
      if (l.type === 'Linear') feat = '[N, ' + l.out_features + ']';
      else if (l.type === 'Embedding') feat = '[N, …, ' + l.embedding_dim + ']';
      else if (l.type === 'EmbeddingBag') feat = '[N, ' + l.embedding_dim + ']';
      else if (/^Conv|Pool|Pad|Flatten|Unflatten/.test(l.type)) feat = null;
      let count = 0;
      if (params) for (const [k, v] of Object.entries(params)) if (k.split('.')[0] === String(i)) count += numel(v);
      rows.push([i, describeLayer(l), feat || '–', params ? count.toLocaleString('en-US') : '…']);
    });
    return rows;
  }
  function numel(v) { return Array.isArray(v) ? v.reduce((s, x) => s + numel(x), 0) : 1; }

  function renderDetail() {
    const e = state.models.get(state.detail);
    if (!e || !e.info) return;
    const info = e.info;
    const st = modelState(e);
    D.status.textContent = st;
    D.status.dataset.state = st;
    D.warning.hidden = info.status !== 'diverged';
    D.warning.textContent = e.el.warning.textContent;
    const metrics = seriesOf(e).join(',');
    const key = chartKey() + '|' + metrics;
    if (!D.chart || D.key !== key) {
      if (D.chart) D.chart.destroy();
      if (D.lr) D.lr.destroy();
      D.chartEl.textContent = ''; D.lrEl.textContent = '';
      D.chart = buildChart(e, D.chartEl, 320, true, chartKey());
      D.lr = C.make({ el: D.lrEl, height: 130, log: false, time: state.xTime, sync: 'm-' + e.name,
        xLabel: state.xTime ? 'wall time (UTC)' : 'step', yLabel: 'learning rate',
        series: [{ label: 'lr', color: C.PALETTE[2], width: 1.5 }], markers: () => markerXs(e) });
      D.key = key;
    }
    C.fit(D.chart, D.chartEl); C.fit(D.lr, D.lrEl);
    const zoom = D.chart.scales.x;
    const keep = D.zoomed ? [zoom.min, zoom.max] : null;
    D.chart.setData(chartData(e, seriesOf(e)), !keep);
    D.lr.setData([xs(e).slice(), e.lrs.map((v) => (Number.isFinite(v) ? v : null))], !keep);
    if (keep) { D.chart.setScale('x', { min: keep[0], max: keep[1] }); }
    D.chartEl.dataset.points = String(e.steps.length);
    D.chartEl.dataset.series = String(D.chart.series.length - 1);
    D.chartEl.setAttribute('aria-label', 'Training loss' + (metrics ? ' and validation ' + metrics : '') + ' of ' + e.name + ' over ' + e.steps.length + ' steps');
    D.lrEl.setAttribute('aria-label', 'Learning rate of ' + e.name + ' per step');
    D.markers.textContent = '';
    for (const m of e.markers.slice(-50)) {
      const li = document.createElement('li');
      li.dataset.kind = m.kind;
      li.textContent = 'step ' + m.step + ': ' + markerText(m);
      D.markers.appendChild(li);
    }
    // architecture and optimizer
    if (!D.params) {
      D.params = 'loading';
      api('v1/models/' + encodeURIComponent(e.name) + '/parameters').then((p) => { D.params = p.parameters || {}; paintDetail(); })
        .catch(() => { D.params = {}; });
    }
    D.arch.textContent = '';
    for (const r of layerRows(info, typeof D.params === 'object' ? D.params : null)) {
      const tr = document.createElement('tr');
      r.forEach((v) => { const td = document.createElement('td'); td.textContent = String(v); tr.appendChild(td); });
      D.arch.appendChild(tr);
    }
    D.optim.textContent = '';
    const kv = [['type', typeName(info.spec.optimizer)], ['lr (now)', fmtNum(info.lr, 4)]];
    for (const [k, v] of Object.entries((info.param_groups || [])[0] || {})) if (k !== 'lr') kv.push([k, JSON.stringify(v)]);
    kv.push(['scheduler', info.spec.scheduler ? JSON.stringify(info.spec.scheduler) : 'none']);
    kv.push(['loss', JSON.stringify(info.spec.loss)]);
    kv.push(['divergence policy', (info.nonfinite && info.nonfinite.policy) || 'skip']);
    for (const [k, v] of kv) {
      const dt = document.createElement('dt'); dt.textContent = k;
      const dd = document.createElement('dd'); dd.textContent = v;
      D.optim.append(dt, dd);
    }
    renderJobs(e);
  }
  function paintDetail() { if (state.detail) { state.dirty.add(state.detail); paint(); } }

  function markerText(m) {
    if (m.kind === 'nonfinite') return (m.reason || 'non-finite') + ' (' + (m.action || '') + ', ' + (m.source || '') + ')';
    if (m.kind === 'hyperparameters')
      return 'changed ' + Object.entries(m.changes || {}).map(([k, v]) => k + ' ' + JSON.stringify(v.from) + ' → ' + JSON.stringify(v.to)).join(', ');
    if (m.kind === 'truncated') return 'history before step ' + m.first_step + ' dropped (' + m.dropped + ' entries)';
    return m.kind;
  }

  async function refreshJobs(name) {
    const e = state.models.get(name);
    if (!e) return;
    try {
      const r = await api('v1/models/' + encodeURIComponent(name) + '/jobs');
      e.jobs = r.jobs || [];
    } catch (err) { if (err.status !== 404) throw err; }
    state.dirty.add(name);
    paint();
  }

  // Job rows are kept per id and updated in place (a button under the pointer is not
  // replaced while it is being clicked).
  const jobRows = new Map();
  function renderJobs(e) {
    const jobs = (e.jobs || []).slice().reverse();
    D.jobsEmpty.hidden = jobs.length > 0;
    const ids = new Set(jobs.map((j) => String(j.id) + '@' + e.name));
    for (const [k, li] of jobRows) if (!ids.has(k)) { li.remove(); jobRows.delete(k); }
    let prev = null;
    for (const j of jobs) {
      const k = String(j.id) + '@' + e.name;
      let li = jobRows.get(k);
      if (!li) {
        li = document.createElement('li');
        li.dataset.job = String(j.id);
        const label = document.createElement('span');
        const bar = document.createElement('progress');
        bar.setAttribute('aria-label', 'Job ' + j.id + ' progress');
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'cancel';
        b.textContent = 'Cancel';
        b.setAttribute('aria-label', 'Cancel job ' + j.id);
        b.addEventListener('click', async () => {
          b.disabled = true;
          try {
            await api('v1/models/' + encodeURIComponent(e.name) + '/jobs/' + j.id, 'DELETE');
          } catch (err) { setStatus('error', 'cancel: ' + err.message); }
          refreshJobs(e.name);
        });
        const small = document.createElement('small');
        li.append(label, bar, b, small);
        jobRows.set(k, li);
      }
      li.dataset.state = j.state;
      const [label, bar, b, small] = li.children;
      label.textContent = 'Job ' + j.id + ' · ' + j.state + ' · ' + j.steps_done + '/' + j.steps_total + ' steps' +
        (j.loss !== null && j.loss !== undefined ? ' · loss ' + fmtNum(j.loss, 4) : '');
      bar.max = j.steps_total || 1;
      bar.value = j.steps_done;
      b.hidden = !(j.state === 'running' || j.state === 'queued');
      small.textContent = j.error || '';
      small.hidden = !j.error;
      if (li.previousElementSibling !== prev || li.parentNode !== D.jobs) D.jobs.insertBefore(li, prev ? prev.nextSibling : D.jobs.firstChild);
      prev = li;
    }
  }

  D.evalForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = state.detail;
    let body;
    try {
      body = { inputs: JSON.parse(D.evalInputs.value), targets: JSON.parse(D.evalTargets.value) };
    } catch (err) {
      D.evalResult.textContent = 'Not JSON: ' + err.message;
      D.evalResult.dataset.state = 'error';
      return;
    }
    try {
      const r = await api('v1/models/' + encodeURIComponent(name) + '/evaluate', 'POST', body);
      D.evalResult.textContent = r.rows + ' rows at step ' + r.step + ': ' +
        Object.entries(r.metrics).map(([k, v]) => k + ' ' + fmtNum(v, 5)).join(', ');
      D.evalResult.dataset.state = 'ok';
    } catch (err) {
      D.evalResult.textContent = err.message;
      D.evalResult.dataset.state = 'error';
    }
  });

  // zoom, pan, export on the model page
  $('zoom-reset').addEventListener('click', () => { D.zoomed = false; paintDetail(); if (D.chart) D.chart.setData(D.chart.data, true); });
  function pan(dir) {
    if (!D.chart) return;
    const s = D.chart.scales.x, w = s.max - s.min;
    D.zoomed = true;
    D.chart.setScale('x', { min: s.min + dir * w / 4, max: s.max + dir * w / 4 });
  }
  $('pan-left').addEventListener('click', () => pan(-1));
  $('pan-right').addEventListener('click', () => pan(1));
  D.chartEl.addEventListener('keydown', (ev) => {
    if (ev.key === 'ArrowLeft') { pan(-1); ev.preventDefault(); }
    if (ev.key === 'ArrowRight') { pan(1); ev.preventDefault(); }
  });
  D.chartEl.addEventListener('mouseup', () => { setTimeout(() => { if (D.chart && D.chart.select.width === 0) D.zoomed = D.zoomed || false; }, 0); });
  D.chartEl.addEventListener('dblclick', () => { D.zoomed = false; });

  function shown() {
    const e = state.models.get(state.detail);
    const u = D.chart;
    const lo = u.scales.x.min, hi = u.scales.x.max;
    const data = u.data, keep = [];
    for (let i = 0; i < data[0].length; i++) if (data[0][i] >= lo && data[0][i] <= hi) keep.push(i);
    const names = [state.xTime ? 'time' : 'step'].concat(u.series.slice(1).map((s) => s.label)).concat(['lr']);
    const cols = data.map((c) => keep.map((i) => c[i]));
    const lrAt = new Map(xs(e).map((x, i) => [x, e.lrs[i]]));
    cols.push(keep.map((i) => { const v = lrAt.get(data[0][i]); return Number.isFinite(v) ? v : null; }));
    return { model: e.name, names, cols, smoothing: state.smoothing };
  }
  function download(name, type, text) {
    // a blob: URL is this page's own memory, not a request to any host
    const url = URL.createObjectURL(new Blob([text], { type: type + ';charset=utf-8' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }
  $('export-csv').addEventListener('click', () => {
    const s = shown();
    download(s.model + '-loss.csv', 'text/csv', C.csv(s.names, s.cols));
  });
  $('export-json').addEventListener('click', () => {
    const s = shown();
    const o = { model: s.model, smoothing: s.smoothing, series: {} };
    s.names.forEach((n, i) => { o.series[n] = s.cols[i]; });
    download(s.model + '-loss.json', 'application/json', JSON.stringify(o));
  });

  // ---- keeping up: the event stream, or polling -------------------------------------
  async function listModels() {
    const list = await api('v1/models');
    const models = (list && list.models) || [];
    const seen = new Set();
    await Promise.all(models.map(async (m) => {
      seen.add(m.name);
      let e = state.models.get(m.name);
      if (!e) {
        e = newEntry(m.name);
        state.models.set(m.name, e);
        insertSorted(e);
      }
      if (e.summary && e.summary.step !== m.step) e.lastMoved = Date.now();
      e.summary = m;
      try {
        await refreshModel(e, m);
      } catch (err) {
        if (err.status === 404) { seen.delete(m.name); return; }
        throw err;
      }
    }));
    for (const [name, e] of state.models) if (!seen.has(name)) removeEntry(name, e);
    els.models.dataset.count = String(state.models.size);
    els.empty.hidden = state.models.size > 0;
    if (state.detail) refreshJobs(state.detail);
  }

  function removeEntry(name, e) {
    if (e.chart) e.chart.destroy();
    e.card.remove();
    state.models.delete(name);
    state.compare.delete(name);
    renderCompare();
  }

  function insertSorted(e) {
    const after = Array.from(els.models.children).find((c) => c.dataset.model > e.name);
    els.models.insertBefore(e.card, after || null);
  }

  async function poll() {
    if (state.polling) return;
    state.polling = true;
    try {
      await listModels();
      state.needToken = false;
      if (!els.auth.dataset.userOpened) els.auth.hidden = true;
      const n = state.models.size;
      setStatus('ok', n + (n === 1 ? ' model' : ' models') + ' · ' + (state.live === 'stream' ? 'live (event stream)' : 'polling') +
        ' · updated ' + new Date().toLocaleTimeString());
      if (state.live !== 'stream') connectStream();
    } catch (e) {
      if (e.status === 401) {
        state.needToken = true;
        els.authReason.textContent = state.token
          ? 'The daemon refused the saved token (401: ' + e.message + '). Give the right one.'
          : 'The daemon answered 401: give the bearer token it was started with (--token-file or EASYTORCH_TOKEN). It stays in this browser\'s local storage.';
        els.auth.hidden = false;
        setStatus('error', 'Needs a token');
      } else {
        setStatus('error', (e.status ? 'HTTP ' + e.status + ': ' : '') + e.message + ' — retrying');
      }
    } finally {
      state.polling = false;
      schedule();
    }
  }

  function schedule() {
    clearTimeout(state.timer);
    if (state.live === 'stream') return;    // pushed: no polling while the stream is up
    if (state.interval > 0 && !state.needToken)
      state.timer = setTimeout(poll, document.hidden ? Math.max(state.interval, 5000) : state.interval);
  }

  // EventSource cannot send an Authorization header: the token goes as ?access_token=.
  let streamTried = 0;
  function connectStream() {
    if (typeof EventSource !== 'function' || state.es || Date.now() - streamTried < 10000) return;
    streamTried = Date.now();
    const url = 'v1/events' + (state.token ? '?access_token=' + encodeURIComponent(state.token) : '');
    let es;
    try { es = new EventSource(url); } catch (e) { return; }
    state.es = es;
    es.onopen = () => { state.live = 'stream'; clearTimeout(state.timer); setStatus('ok', state.models.size + ' models · live (event stream)'); };
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED || state.live !== 'stream') {
        es.close();
        state.es = null;
        state.live = 'polling';
        schedule();
      }
    };
    const moved = (ev) => {
      let d = null;
      try { d = JSON.parse(ev.data); } catch (e) { return; }
      const name = d && d.model;
      if (!name) return;
      if (ev.type === 'created' || ev.type === 'deleted' || !state.models.has(name)) { poll(); return; }
      const e = state.models.get(name);
      e.lastMoved = Date.now();
      refreshModel(e, null).catch((err) => { if (err.status === 404) poll(); });
      if (state.detail === name && ev.type === 'job') refreshJobs(name);
    };
    for (const t of ['step', 'batch', 'evaluation', 'job', 'nonfinite', 'hyperparameters', 'created', 'deleted'])
      es.addEventListener(t, moved);
    es.addEventListener('reset', () => poll());
  }

  function setStatus(kind, text) {
    els.status.textContent = text;
    els.status.dataset.state = kind;
    els.status.dataset.live = state.live;
  }

  // ---- controls ------------------------------------------------------------------------
  function redrawAll() {
    for (const n of state.models.keys()) state.dirty.add(n);
    paint();
  }
  els.logScale.checked = state.logScale;
  els.logScale.addEventListener('change', () => {
    state.logScale = els.logScale.checked;
    store.set(LOG_KEY, state.logScale ? '1' : '0');
    redrawAll();
  });
  els.smoothing.value = String(state.smoothing);
  els.smoothingValue.textContent = state.smoothing.toFixed(2);
  els.smoothing.addEventListener('input', () => {
    state.smoothing = Number(els.smoothing.value);
    els.smoothingValue.textContent = state.smoothing.toFixed(2);
    store.set(SMOOTH_KEY, String(state.smoothing));
    redrawAll();
  });
  if (![...els.interval.options].some((o) => Number(o.value) === state.interval)) state.interval = 1000;
  els.interval.value = String(state.interval);
  els.interval.addEventListener('change', () => {
    state.interval = Number(els.interval.value);
    store.set(INTERVAL_KEY, String(state.interval));
    if (state.interval > 0) poll(); else clearTimeout(state.timer);
  });
  els.tokenForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.token = els.token.value.trim();
    store.set(TOKEN_KEY, state.token);
    els.token.value = '';
    delete els.auth.dataset.userOpened;
    els.auth.hidden = true;
    state.needToken = false;
    if (state.es) { state.es.close(); state.es = null; state.live = 'polling'; streamTried = 0; }
    setStatus('ok', 'Token saved · connecting…');
    poll();
  });
  els.forget.addEventListener('click', () => {
    state.token = '';
    store.del(TOKEN_KEY);
    els.token.value = '';
    setStatus('ok', 'Token forgotten');
    poll();
  });
  els.showToken.addEventListener('click', () => {
    const open = els.auth.hidden;
    els.auth.hidden = !open;
    if (open) { els.auth.dataset.userOpened = '1'; els.token.focus(); } else delete els.auth.dataset.userOpened;
  });
  document.addEventListener('visibilitychange', () => { if (!document.hidden && state.live !== 'stream') poll(); });
  window.addEventListener('hashchange', route);
  if (typeof ResizeObserver === 'function') {
    let pending = false;
    new ResizeObserver(() => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => { pending = false; redrawAll(); });
    }).observe(document.body);
  }
  const mq = window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)');
  if (mq && mq.addEventListener) mq.addEventListener('change', () => {
    for (const e of state.models.values()) { if (e.chart) e.chart.destroy(); e.chart = null; }
    D.key = ''; compareKey = '';
    redrawAll();
  });

  // detail page: jobs are refreshed every second while it is open
  setInterval(() => { if (state.detail && state.live !== 'stream' && !document.hidden) refreshJobs(state.detail).catch(() => {}); }, 1000);
  route();
  poll();
})();
