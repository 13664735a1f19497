// easytorch dashboard: the shared state, the API, the overview (a card per model with its
// loss chart) and the comparison chart.  The model page is model.js (+ versions.js), keeping
// up with the daemon (event stream, or polling) is live.js.  Plain browser JavaScript, no
// build step, nothing loaded from elsewhere; the files share one namespace, window.ET.
'use strict';

window.ET = (function () {
  const C = window.ETCharts;
  const TOKEN_KEY = 'easytorch.token';
  const LOG_KEY = 'easytorch.logScale';
  const INTERVAL_KEY = 'easytorch.interval';
  const SMOOTH_KEY = 'easytorch.smoothing';
  const XAXIS_KEY = 'easytorch.xAxis';
  const MAX_POINTS = 200000;   // per model; the daemon keeps 100000 by default

  const $ = (id) => document.getElementById(id);
  const els = {
    status: $('status'), auth: $('auth'), authReason: $('auth-reason'), tokenForm: $('token-form'),
    token: $('token'), forget: $('forget-token'), showToken: $('show-token'),
    models: $('models'), empty: $('empty'), logScale: $('log-scale'), interval: $('interval'),
    template: $('model-card'), smoothing: $('smoothing'), smoothingValue: $('smoothing-value'),
    xAxis: $('x-axis'), overview: $('overview'), detail: $('detail'), compare: $('compare'),
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
    xMode: store.get(XAXIS_KEY) || 'step',   // 'step' | 'wall' | 'relative'
    models: new Map(),     // name -> entry
    compare: new Set(),    // names overlaid on the comparison chart
    needToken: false,
    live: 'connecting',    // 'stream' | 'polling' | 'connecting'
    detail: null,          // the model page's name
  };
  if (!(state.smoothing >= 0 && state.smoothing < 1)) state.smoothing = 0.6;
  if (!C.X_LABELS[state.xMode]) state.xMode = 'step';

  class HttpError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  // Every request goes to this page's own origin (relative paths), with the token.
  async function request(path, method, body) {
    const headers = { Accept: 'application/json' };
    if (state.token) headers.Authorization = 'Bearer ' + state.token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    try {
      return await fetch(path, { method: method || 'GET', headers, cache: 'no-store',
        body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new HttpError(0, 'cannot reach the daemon (' + e.message + ')');
    }
  }
  async function api(path, method, body) {
    const res = await request(path, method, body);
    let j = null;
    try { j = await res.json(); } catch (e) { j = null; }
    if (!res.ok) {
      const msg = j && typeof j.error === 'string' ? j.error : res.statusText;
      throw new HttpError(res.status, msg || ('HTTP ' + res.status));
    }
    return j;
  }
  const modelPath = (name) => 'v1/models/' + encodeURIComponent(name);

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
  // steps/losses/lrs/times are parallel columns (times: Unix seconds, NaN when unknown);
  // val: the validation entries; markers: the daemon's markers (+ versions on the model page).
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
    q('.plot').setAttribute('aria-label', 'Loss of ' + name + ': not drawn yet');
    const pick = q('.compare-pick');
    pick.setAttribute('aria-label', 'Compare ' + name);
    pick.checked = state.compare.has(name);
    pick.addEventListener('change', () => {
      if (pick.checked) state.compare.add(name); else state.compare.delete(name);
      ET.redrawCompare();
    });
    const e = {
      name, card, since: null, step: null, loss: null, info: null, summary: null, jobs: null,
      steps: [], losses: [], lrs: [], times: [], val: [], markers: [], chart: null,
      loading: null, queue: [], lastMoved: 0, shownState: '', epoch: 0, cols: null, plotWidth: undefined,
      el: { arch: q('.arch'), step: q('.step'), loss: q('.loss'), lr: q('.lr'), params: q('.params'),
        plot: q('.plot'), caption: q('.caption'), state: q('.state'), warning: q('.warning') },
    };
    return e;
  }

  // (e.epoch: the points were replaced; the chart columns are built again)
  function resetEntry(e) {
    Object.assign(e, { since: null, step: null, info: null, steps: [], losses: [], lrs: [], times: [],
      val: [], markers: [], epoch: e.epoch + 1 });
  }

  function trim(e) {
    if (e.steps.length > MAX_POINTS) {
      const cut = e.steps.length - MAX_POINTS / 2;
      for (const k of ['steps', 'losses', 'lrs', 'times']) e[k].splice(0, cut);
      e.epoch++;
    }
  }

  function addValidation(e, v) {
    if (!e.val.some((w) => w.step === v.step && w.job === v.job)) e.val.push(v);
  }

  // Appends what GET .../loss?since=K answered ("lr" and "time" are [step, value] lists
  // parallel to "history" on daemons that record them).
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
    trim(e);
    for (const v of res.validation || []) addValidation(e, v);
    for (const m of res.markers || []) if (!e.markers.some((w) => w.step === m.step && w.time === m.time && w.kind === m.kind)) e.markers.push(m);
    if (e.steps.length) e.since = e.steps[e.steps.length - 1];
    else if (e.since === null) e.since = -1;
    if (typeof res.step === 'number') e.step = res.step;
  }

  // Fetches the model's description and the loss after the last point the page has.  One
  // at a time per model; what the stream pushes meanwhile waits in e.queue.
  function refresh(e) {
    if (e.loading) { e.again = true; return e.loading; }
    e.loading = (async () => {
      try {
        do {
          e.again = false;
          const info = await api(modelPath(e.name));
          if (e.step !== null && info.step < e.since) resetEntry(e);   // rolled back, or made again
          e.info = info;
          absorb(e, await api(modelPath(e.name) + '/loss' + (e.since === null || e.since < 0 ? '' : '?since=' + e.since)));
          e.loss = info.loss ?? (e.losses.length ? e.losses[e.losses.length - 1] : null);
          if (typeof info.step === 'number' && info.step > (e.step ?? -1)) e.step = info.step;
        } while (e.again);
      } finally {
        e.loading = null;
      }
      const q = e.queue;
      e.queue = [];
      for (const [type, d] of q) ET.live.apply(e, type, d);
      changed(e);
    })();
    return e.loading;
  }

  // ---- drawing: in sweeps (frames.js), only what changed and is on screen -----------
  // Keys: a model's name (its card), COMPARE (the comparison chart), DETAIL (the model page).
  const COMPARE = Symbol('compare'), DETAIL = Symbol('detail');
  const painters = [];   // the model page's, called when it is drawn
  const frames = window.ETFrames.scheduler({ draw: drawKey });
  function keysOf(e) {
    if (state.detail) return state.detail === e.name ? [DETAIL] : [];
    return state.compare.has(e.name) ? [e.name, COMPARE] : [e.name];
  }
  // A live change (the stream, a fetch): drawn in the next sweep.
  function changed(e) { for (const k of keysOf(e)) frames.mark(k); }
  // The user's change to one model (scrolled into view, resized): drawn at the next frame.
  function changedNow(e) { frames.now(keysOf(e)); }
  function drawKey(k) {
    if (k === DETAIL) { if (state.detail) for (const f of painters) f([state.detail]); return; }
    if (k === COMPARE) { if (!state.detail) renderCompare(); return; }
    const e = state.models.get(k);
    if (e && !state.detail) render(e);
  }
  // Kept up to date by a ResizeObserver (no layout read while drawing): a plot box's width.
  const widths = new WeakMap();
  const widthOf = (el) => widths.get(el);
  const NF = new Intl.NumberFormat('en-US');
  const fmtInt = (v) => NF.format(v);
  function setText(el, text) { if (el.textContent !== text) el.textContent = text; }

  // The x values of a model's points in the current x mode (NaN where not known).
  function xs(e) {
    if (state.xMode === 'step') return e.steps;
    if (state.xMode === 'wall') return e.times;
    const t0 = e.times.find(Number.isFinite);
    return e.times.map((t) => t - t0);
  }
  function xOfMarker(e, m) {
    if (state.xMode === 'step') return m.step;
    let i = e.steps.length - 1;
    while (i >= 0 && e.steps[i] > m.step) i--;
    let t = i >= 0 && e.steps[i] === m.step ? e.times[i] : NaN;
    if (!Number.isFinite(t)) t = typeof m.time === 'number' ? m.time : Date.parse(m.time) / 1000;
    return state.xMode === 'wall' ? t : t - e.times.find(Number.isFinite);
  }

  // Validation metrics the model has (each is a series on its charts); a graph with a loss
  // list also has each entry's own loss ("losses.0", ...: the entry's "losses" by index).
  function metricsOf(e) {
    const metrics = [];
    for (const v of e.val) for (const k of Object.keys(v.metrics || {})) if (!metrics.includes(k)) metrics.push(k);
    for (const v of e.val) (v.losses || []).forEach((_, i) => { if (!metrics.includes('losses.' + i)) metrics.push('losses.' + i); });
    return metrics;
  }

  const isLoss = (k) => k === 'loss' || k.startsWith('losses.');

  // "loss (logits)": a loss-list entry named by the output(s) it takes.
  function metricLabel(e, k) {
    if (!k.startsWith('losses.')) return k;
    const i = Number(k.slice(7));
    const list = e.info && e.info.spec && Array.isArray(e.info.spec.loss) ? e.info.spec.loss : null;
    const t = list && list[i];
    return 'loss (' + (t && t.output !== undefined ? [].concat(t.output).join(', ') : '#' + i) + ')';
  }

  // The columns of a model's chart (columns.js): x, smoothed train loss, raw train loss
  // (faint), then each validation metric at its step; only points with a known x.
  function view() { return { xMode: state.xMode, log: state.logScale, smoothing: state.smoothing }; }
  function columns(e, metrics) { return window.ETColumns.of(e, view(), metrics || metricsOf(e)); }
  function chartData(e, metrics) { return columns(e, metrics).data; }

  function markerXs(e, extra) {
    return e.markers.concat(extra || []).map((m) => ({ x: xOfMarker(e, m), kind: m.kind }));
  }

  function buildChart(e, el, height, markers, width) {
    const metrics = metricsOf(e);
    const series = [
      { label: 'train loss', color: C.PALETTE[0], width: 2 },
      { label: 'train loss (raw)', color: C.PALETTE[0] + '55', width: 1 },
    ];
    metrics.forEach((k, i) => series.push({ label: 'validation ' + metricLabel(e, k), color: C.PALETTE[1 + (i % 6)], width: 1.5,
      points: true, scale: isLoss(k) ? 'y' : 'y2' }));
    const u = C.make({ el, series, log: state.logScale, xMode: state.xMode, height,
      yLabel: 'loss' + (state.logScale ? ' (log scale)' : ''), y2Label: metrics.some((k) => !isLoss(k)) ? 'metric' : null,
      markers, sync: 'm-' + e.name, width });
    u._et.key = chartKey() + '|' + metrics.join(',');
    return u;
  }

  function chartKey() { return [state.logScale, state.xMode].join('/'); }

  function modelState(e) {
    const info = e.info || {};
    if (info.status === 'diverged') return 'diverged';
    if ((e.jobs || []).some((j) => j.state === 'running' || j.state === 'queued')) return 'training';
    if (e.lastMoved && Date.now() - e.lastMoved < 5000) return 'training';
    if (typeof info.serving === 'number') return 'serving v' + info.serving;
    return 'idle';
  }
  function renderState(e) {
    const st = modelState(e);
    if (st === e.shownState) return;
    e.shownState = st;
    e.el.state.textContent = st;
    e.el.state.dataset.state = st.split(' ')[0];
  }

  function divergedText(info) {
    return 'Diverged: a parameter is not finite (' + ((info.nonfinite && info.nonfinite.last && info.nonfinite.last.reason) ||
      'non-finite values') + '). Predictions are NaN until the parameters are set again.';
  }

  function render(e) {
    const { el, card } = e;
    const info = e.info || {};
    const step = e.step ?? 0;
    // (for scripts and tests, also off screen)
    card.dataset.step = String(step);
    el.plot.dataset.points = String(e.steps.length);
    // cards off screen are drawn when they scroll into view (a few of 100 show)
    if (!e.visible) { e.chartStale = true; return; }
    setText(el.step, fmtInt(step));
    setText(el.loss, fmtNum(e.loss, 4));
    setText(el.lr, fmtNum(typeof info.lr === 'number' ? info.lr : null, 3));
    setText(el.params, typeof info.parameters === 'number' ? fmtInt(info.parameters) : '–');
    if (e.archOf !== info.spec) { e.archOf = info.spec; setText(el.arch, describeSpec(info.spec)); }
    renderState(e);
    const status = info.status || 'ok';
    if (card.dataset.status !== status) {
      card.dataset.status = status;
      el.warning.hidden = status !== 'diverged';
    }
    setText(el.warning, status === 'diverged' ? divergedText(info) : '');
    const metrics = metricsOf(e);
    if (!e.chart || e.chart._et.key !== chartKey() + '|' + metrics.join(',')) {
      C.destroy(e.chart);
      el.plot.textContent = '';
      e.chart = buildChart(e, el.plot, 170, () => markerXs(e), e.plotWidth);
    }
    C.fit(e.chart, el.plot, e.plotWidth);
    C.update(e.chart, chartData(e, metrics));
    e.chartStale = false;
    const n = e.steps.length;
    el.plot.dataset.validation = String(e.val.length);
    el.plot.dataset.series = String(e.chart.series.length - 1);
    el.plot.setAttribute('aria-label', n
      ? 'Loss of ' + e.name + ' over ' + n + ' steps' + (state.logScale ? ' (log scale)' : '') + ', last ' + fmtNum(e.losses[n - 1], 4) +
        (e.val.length ? '; ' + e.val.length + ' validation points' : '')
      : 'Loss of ' + e.name + ': no training steps yet');
    const trunc = e.markers.filter((m) => m.kind === 'truncated').length;
    const noTime = state.xMode !== 'step' && n && !e.times.some(Number.isFinite);
    setText(el.caption, n
      ? fmtInt(n) + ' points, steps ' + fmtInt(e.steps[0]) + '–' + fmtInt(e.steps[n - 1]) +
        (state.logScale ? ', log scale' : '') + (trunc ? ' · older history dropped by the daemon' : '') +
        (noTime ? ' · this daemon records no wall times: switch the x axis to steps' : '')
      : 'No loss yet: the chart fills as the model trains.');
  }

  // ---- the comparison chart: one series per picked model ---------------------------
  let compareChart = null, compareKey = '';
  function renderCompare() {
    const names = [...state.compare].filter((n) => state.models.has(n)).sort();
    els.compare.hidden = names.length === 0;
    els.compareChart.dataset.series = String(names.length);
    if (!names.length) { C.destroy(compareChart); compareChart = null; return; }
    setText(els.compareNames, '(' + names.join(', ') + ')');
    const key = chartKey() + '|' + names.join(',');
    if (!compareChart || compareKey !== key) {
      C.destroy(compareChart);
      els.compareChart.textContent = '';
      compareChart = C.make({ el: els.compareChart, height: 220, log: state.logScale, xMode: state.xMode,
        width: widthOf(els.compareChart),
        yLabel: 'train loss, smoothed' + (state.logScale ? ' (log scale)' : ''),
        series: names.map((n, i) => ({ label: n, color: C.PALETTE[i % C.PALETTE.length], width: 2 })) });
      compareKey = key;
    }
    // one x for all: the union of the models' x values; each model's smoothed loss as its
    // card draws it (its columns)
    const mine = names.map((n) => columns(state.models.get(n)));
    const all = new Set();
    for (const c of mine) for (const x of c.x) all.add(x);
    const x = [...all].sort((a, b) => a - b);
    const pos = new Map(x.map((v, i) => [v, i]));
    const cols = [x];
    for (const c of mine) {
      const col = new Array(x.length).fill(null);
      c.x.forEach((v, i) => { col[pos.get(v)] = c.sm[i]; });
      cols.push(col);
    }
    C.fit(compareChart, els.compareChart, widthOf(els.compareChart));
    C.update(compareChart, cols);
    els.compareChart.setAttribute('aria-label', 'Smoothed training loss of ' + names.join(', '));
  }

  // ---- the list of models ------------------------------------------------------------
  // Only the cards in the viewport are drawn in the sweeps (no margin: at 1400x900, 4 of 100
  // cards show and a 200 px margin drew 6, each a canvas to commit); one scrolled in is drawn
  // at the next frame.
  const onScreen = typeof IntersectionObserver === 'function' ? new IntersectionObserver((seen) => {
    for (const it of seen) {
      const e = state.models.get(it.target.dataset.model);
      if (!e) continue;
      e.visible = it.isIntersecting;
      if (e.visible && e.chartStale) changedNow(e);
    }
  }) : null;
  // The plot boxes' widths, as laid out (a card's chart follows its box; a box skipped off
  // screen keeps its last width).
  const plotOf = new WeakMap();   // a card's plot element -> its entry
  const sized = typeof ResizeObserver === 'function' ? new ResizeObserver((boxes) => {
    for (const b of boxes) {
      const w = Math.round(b.contentRect.width);
      if (!(w > 0)) continue;
      widths.set(b.target, w);
      const e = plotOf.get(b.target);
      if (e) {
        e.plotWidth = w;
        if (e.chart && Math.abs(Math.max(200, w) - e.chart.width) > 2) changedNow(e);
      } else if (b.target === els.compareChart) frames.now([COMPARE]);
      else frames.now([DETAIL]);
    }
  }) : null;
  if (sized) for (const el of [els.compareChart, $('detail-chart'), $('detail-lr')]) sized.observe(el);

  function ensureEntry(name) {
    let e = state.models.get(name);
    if (!e) {
      e = newEntry(name);
      state.models.set(name, e);
      const after = Array.from(els.models.children).find((c) => c.dataset.model > name);
      els.models.insertBefore(e.card, after || null);
      e.visible = !onScreen;
      if (onScreen) onScreen.observe(e.card);
      plotOf.set(e.el.plot, e);
      if (sized) sized.observe(e.el.plot);
      counted();
    }
    return e;
  }
  function removeEntry(name) {
    const e = state.models.get(name);
    if (!e) return;
    C.destroy(e.chart);
    if (onScreen) onScreen.unobserve(e.card);
    if (sized) sized.unobserve(e.el.plot);
    e.card.remove();
    state.models.delete(name);
    state.compare.delete(name);
    counted();
    frames.now([COMPARE]);
  }
  function counted() {
    els.models.dataset.count = String(state.models.size);
    els.empty.hidden = state.models.size > 0;
  }

  // GET /v1/models, then per model what moved since the page last looked.
  async function listModels() {
    const list = await api('v1/models');
    const models = (list && list.models) || [];
    const seen = new Set(models.map((m) => m.name));
    for (const name of [...state.models.keys()]) if (!seen.has(name)) removeEntry(name);
    counted();
    await Promise.all(models.map(async (m) => {
      const e = ensureEntry(m.name);
      if (e.summary && e.summary.step !== m.step) e.lastMoved = Date.now();
      const moved = !e.info || !e.summary || e.summary.step !== m.step || e.summary.status !== m.status ||
        e.info.step !== m.step;
      e.summary = m;
      if (!moved) return;
      try {
        await refresh(e);
      } catch (err) {
        if (err.status === 404) { removeEntry(m.name); return; }   // deleted meanwhile
        throw err;
      }
    }));
  }

  function setStatus(kind, text) {
    els.status.textContent = text;
    els.status.dataset.state = kind;
    els.status.dataset.live = state.live;
  }

  // ---- controls ------------------------------------------------------------------------
  // Every chart drawn again from the next animation frame on (the cards on screen first).
  function redrawAll() {
    if (state.detail) { frames.now([DETAIL]); return; }
    const all = [...state.models.values()];
    frames.now(all.filter((e) => e.visible).concat(all.filter((e) => !e.visible)).map((e) => e.name).concat([COMPARE]));
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
  els.xAxis.value = state.xMode;
  els.xAxis.addEventListener('change', () => {
    state.xMode = C.X_LABELS[els.xAxis.value] ? els.xAxis.value : 'step';
    store.set(XAXIS_KEY, state.xMode);
    redrawAll();
  });
  if (![...els.interval.options].some((o) => Number(o.value) === state.interval)) state.interval = 1000;
  els.interval.value = String(state.interval);
  els.interval.addEventListener('change', () => {
    state.interval = Number(els.interval.value);
    store.set(INTERVAL_KEY, String(state.interval));
    ET.live.intervalChanged();
  });
  els.tokenForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.token = els.token.value.trim();
    store.set(TOKEN_KEY, state.token);
    els.token.value = '';
    delete els.auth.dataset.userOpened;
    els.auth.hidden = true;
    state.needToken = false;
    setStatus('ok', 'Token saved · connecting…');
    ET.live.restart();
  });
  els.forget.addEventListener('click', () => {
    state.token = '';
    store.del(TOKEN_KEY);
    els.token.value = '';
    setStatus('ok', 'Token forgotten');
    ET.live.restart();
  });
  els.showToken.addEventListener('click', () => {
    const open = els.auth.hidden;
    els.auth.hidden = !open;
    if (open) { els.auth.dataset.userOpened = '1'; els.token.focus(); } else delete els.auth.dataset.userOpened;
  });
  const mq = window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)');
  if (mq && mq.addEventListener) mq.addEventListener('change', () => {
    for (const e of state.models.values()) { C.destroy(e.chart); e.chart = null; }
    C.destroy(compareChart); compareChart = null;
    ET.model.rebuild();
    redrawAll();
  });
  // "training" turns to "idle" 5 s after the last step: a clock, not a request
  setInterval(() => {
    if (!state.detail) for (const e of state.models.values()) renderState(e);
    else ET.model.clock();
  }, 1000);
  // every script is in by DOMContentLoaded: then the page starts
  document.addEventListener('DOMContentLoaded', () => { ET.model.route(); ET.live.start(); });

  const ET = {
    C, state, els, store, HttpError, request, api, modelPath, fmtNum, describeLayer, typeName,
    refresh, resetEntry, absorb, trim, addValidation, changed, painters, xs, xOfMarker,
    metricsOf, metricLabel, columns, chartData, markerXs, buildChart, chartKey, modelState, divergedText, render,
    renderCompare, ensureEntry, removeEntry, listModels, setStatus, redrawAll, widthOf, setText,
    idle: () => frames.idle(), redrawCompare: () => frames.now([COMPARE]),
  };
  return ET;
})();
