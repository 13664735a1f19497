// easytorch dashboard: the page of one model (/#model=NAME): loss and learning-rate charts
// with zoom, pan and export of the shown range, markers, the architecture table, optimizer
// and scheduler, jobs with progress and cancel, the evaluate form.  Versions: versions.js.
'use strict';

ET.model = (function () {
  const { C, state, els, api, modelPath, fmtNum, describeLayer, typeName } = ET;
  const $ = (id) => document.getElementById(id);
  const D = {
    title: $('detail-title'), status: $('detail-status'), warning: $('detail-warning'),
    chartEl: $('detail-chart'), lrEl: $('detail-lr'), markers: $('detail-markers'),
    arch: document.querySelector('#arch-table tbody'), optim: $('optim'), jobs: $('jobs'),
    jobsEmpty: $('jobs-empty'), evalForm: $('eval-form'), evalInputs: $('eval-inputs'),
    evalTargets: $('eval-targets'), evalResult: $('eval-result'),
    chart: null, lr: null, params: null, infoShown: null, paramsShown: null,
  };
  const extraMarkers = [];   // version freezes (versions.js), drawn with the daemon's markers

  function rebuild() {
    C.destroy(D.chart); C.destroy(D.lr);
    D.chart = D.lr = null;
  }

  function route() {
    const m = /^#model=(.+)$/.exec(location.hash);
    const name = m ? decodeURIComponent(m[1]) : null;
    state.detail = name;
    els.overview.hidden = !!name;
    els.detail.hidden = !name;
    rebuild();
    D.params = null; D.infoShown = null; D.evalResult.textContent = '';
    jobRows.clear(); D.jobs.textContent = '';
    for (const e of state.models.values()) e.jobsAsked = false;
    extraMarkers.length = 0;
    if (name) {
      D.title.textContent = name;
      document.title = name + ' · easytorch dashboard';
      refreshJobs(name).catch(() => {});
      if (ET.versions) ET.versions.open(name);
      const e = state.models.get(name);
      if (e) ET.changed(e);
    } else {
      document.title = 'easytorch dashboard';
      if (ET.versions) ET.versions.open(null);
      ET.redrawAll();
    }
  }
  window.addEventListener('hashchange', route);

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

  function renderStatus(e) {
    const st = ET.modelState(e);
    if (D.status.textContent === st) return;
    D.status.textContent = st;
    D.status.dataset.state = st.split(' ')[0];
  }
  // "training" turns to "idle" 5 s after the last step (app.js's clock)
  function clock() { const e = state.models.get(state.detail); if (e && e.info) renderStatus(e); }

  function renderDetail() {
    const e = state.models.get(state.detail);
    if (!e || !e.info) return;
    const info = e.info;
    // (the widths the ResizeObserver saw, else read before anything on the page is written)
    const wChart = ET.widthOf(D.chartEl) ?? D.chartEl.clientWidth, wLr = ET.widthOf(D.lrEl) ?? D.lrEl.clientWidth;
    renderStatus(e);
    if (e.jobs === null && !e.jobsAsked) { e.jobsAsked = true; refreshJobs(e.name).catch(() => {}); }
    D.warning.hidden = info.status !== 'diverged';
    D.warning.textContent = info.status === 'diverged' ? ET.divergedText(info) : '';
    const metrics = ET.metricsOf(e);
    if (!D.chart || D.chart._et.key !== ET.chartKey() + '|' + metrics.join(',')) {
      rebuild();
      D.chartEl.textContent = ''; D.lrEl.textContent = '';
      D.chart = ET.buildChart(e, D.chartEl, 320, () => ET.markerXs(e, allMarkers(e).slice(e.markers.length)), wChart);
      D.lr = C.make({ el: D.lrEl, height: 130, log: false, xMode: state.xMode, sync: 'm-' + e.name, width: wLr,
        yLabel: 'learning rate', series: [{ label: 'lr', color: C.PALETTE[2], width: 1.5 }],
        markers: () => ET.markerXs(e, allMarkers(e).slice(e.markers.length)) });
    }
    C.fit(D.chart, D.chartEl, wChart); C.fit(D.lr, D.lrEl, wLr);
    const cols = ET.columns(e, metrics);
    C.update(D.chart, cols.data);
    C.update(D.lr, [cols.x, cols.lr]);
    D.chartEl.dataset.points = String(e.steps.length);
    D.chartEl.dataset.series = String(D.chart.series.length - 1);
    D.chartEl.dataset.xMode = state.xMode;
    D.chartEl.setAttribute('aria-label', 'Training loss' + (metrics.length ? ' and validation ' + metrics.map((k) => ET.metricLabel(e, k)).join(', ') : '') +
      ' of ' + e.name + ' over ' + e.steps.length + ' steps, x axis: ' + C.X_LABELS[state.xMode]);
    D.lrEl.setAttribute('aria-label', 'Learning rate of ' + e.name + ' per step');
    renderMarkers(e);
    if (!D.params) {
      D.params = 'loading';
      api(modelPath(e.name) + '/parameters').then((p) => { D.params = p.parameters || {}; paintDetail(); })
        .catch(() => { D.params = {}; });
    }
    if (D.infoShown !== info || D.paramsShown !== D.params) renderInfo(info);
    renderJobs(e);
  }
  ET.painters.push((dirty) => { if (state.detail && (!dirty || dirty.includes(state.detail))) renderDetail(); });
  function paintDetail() { if (state.detail) { const e = state.models.get(state.detail); if (e) ET.changed(e); } }

  function renderInfo(info) {
    D.infoShown = info;
    D.paramsShown = D.params;
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
  }

  function markerText(m) {
    if (m.kind === 'nonfinite') return (m.reason || 'non-finite') + ' (' + (m.action || '') + ', ' + (m.source || '') + ')';
    if (m.kind === 'hyperparameters')
      return 'changed ' + Object.entries(m.changes || {}).map(([k, v]) => k + ' ' + JSON.stringify(v.from) + ' → ' + JSON.stringify(v.to)).join(', ');
    if (m.kind === 'truncated') return 'history before step ' + m.first_step + ' dropped (' + m.dropped + ' entries)';
    if (m.kind === 'version') {
      const label = m.label || (ET.versions && ET.versions.label(m.version));
      if (m.action === 'rolled_back') return 'rolled back to version ' + m.version + ' (from step ' + m.from_step + ')';
      return 'version ' + m.version + ' frozen' + (label ? ' (' + label + ')' : '');
    }
    return m.kind;
  }
  let markersShown = '';
  // The daemon's markers, and the freezes from the version list where the daemon has no
  // version markers (an older one).
  function allMarkers(e) {
    const frozen = new Set(e.markers.filter((m) => m.kind === 'version' && m.action === 'frozen').map((m) => m.version));
    return e.markers.concat(extraMarkers.filter((m) => !frozen.has(m.version)));
  }
  function renderMarkers(e) {
    const ms = allMarkers(e).sort((a, b) => a.step - b.step).slice(-50);
    const key = ms.map((m) => m.kind + m.step + (m.version || '')).join(',');
    if (key === markersShown) return;
    markersShown = key;
    D.markers.textContent = '';
    for (const m of ms) {
      const li = document.createElement('li');
      li.dataset.kind = m.kind;
      li.textContent = 'step ' + m.step + ': ' + markerText(m);
      D.markers.appendChild(li);
    }
  }

  // ---- jobs -------------------------------------------------------------------------
  async function refreshJobs(name) {
    const e = state.models.get(name);
    if (!e) return;
    try {
      const r = await api(modelPath(name) + '/jobs');
      e.jobs = r.jobs || [];
    } catch (err) { if (err.status !== 404) throw err; }
    ET.changed(e);
  }
  // A job event (live.js): the record, updated in place.
  function jobEvent(e, d) {
    if (!e.jobs) { if (state.detail === e.name) refreshJobs(e.name).catch(() => {}); return; }
    const j = e.jobs.find((x) => x.id === d.id);
    if (!j) { refreshJobs(e.name).catch(() => {}); return; }
    for (const k of ['state', 'steps_done', 'steps_total', 'loss', 'error', 'epoch']) if (k in d) j[k] = d[k];
    ET.changed(e);
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
            await api(modelPath(e.name) + '/jobs/' + j.id, 'DELETE');
          } catch (err) { ET.setStatus('error', 'cancel: ' + err.message); }
          refreshJobs(e.name).catch(() => {});
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

  // ---- evaluate a pasted batch ---------------------------------------------------------
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
      const r = await api(modelPath(name) + '/evaluate', 'POST', body);
      D.evalResult.textContent = r.rows + ' rows at step ' + r.step + ': ' +
        Object.entries(r.metrics).map(([k, v]) => k + ' ' + fmtNum(v, 5)).join(', ');
      D.evalResult.dataset.state = 'ok';
    } catch (err) {
      D.evalResult.textContent = err.message;
      D.evalResult.dataset.state = 'error';
    }
  });

  // ---- zoom, pan, export of the shown range --------------------------------------------
  $('zoom-reset').addEventListener('click', () => { if (D.chart) C.resetZoom(D.chart); });
  $('pan-left').addEventListener('click', () => { if (D.chart) C.pan(D.chart, -1); });
  $('pan-right').addEventListener('click', () => { if (D.chart) C.pan(D.chart, 1); });
  D.chartEl.addEventListener('keydown', (ev) => {
    if (!D.chart) return;
    if (ev.key === 'ArrowLeft') { C.pan(D.chart, -1); ev.preventDefault(); }
    if (ev.key === 'ArrowRight') { C.pan(D.chart, 1); ev.preventDefault(); }
    if (ev.key === 'Escape' || ev.key === '0') { C.resetZoom(D.chart); ev.preventDefault(); }
  });

  // The series in the chart's visible x range, with the step and the lr of each point.
  function shown() {
    const e = state.models.get(state.detail);
    const u = D.chart;
    const lo = u.scales.x.min, hi = u.scales.x.max;
    const data = u.data, keep = [];
    for (let i = 0; i < data[0].length; i++) if (data[0][i] >= lo && data[0][i] <= hi) keep.push(i);
    const xName = { step: 'step', wall: 'time', relative: 'relative_seconds' }[state.xMode];
    const names = [xName].concat(u.series.slice(1).map((s) => s.label)).concat(['lr']);
    const cols = data.map((c) => keep.map((i) => c[i]));
    const x = ET.xs(e), at = new Map();
    x.forEach((v, i) => at.set(v, i));
    cols.push(keep.map((i) => { const v = e.lrs[at.get(data[0][i])]; return Number.isFinite(v) ? v : null; }));
    if (state.xMode !== 'step') { names.push('step'); cols.push(keep.map((i) => e.steps[at.get(data[0][i])])); }
    return { model: e.name, names, cols, smoothing: state.smoothing, range: [lo, hi] };
  }
  function download(name, type, data) {
    // a blob: URL is this page's own memory, not a request to any host
    const url = URL.createObjectURL(data instanceof Blob ? data : new Blob([data], { type: type + ';charset=utf-8' }));
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
    const o = { model: s.model, smoothing: s.smoothing, x: s.names[0], range: s.range, series: {} };
    s.names.forEach((n, i) => { o.series[n] = s.cols[i]; });
    download(s.model + '-loss.json', 'application/json', JSON.stringify(o));
  });

  return { route, rebuild, refreshJobs, jobEvent, download, extraMarkers, clock, paint: paintDetail };
})();
