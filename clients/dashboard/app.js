// easytorch dashboard: lists the daemon's models and plots each one's loss.
// Plain browser JavaScript, no build step and nothing loaded from elsewhere.
// Polls GET /v1/models for the list and GET /v1/models/{name}/loss?since=K for
// the loss points after the last one it has (so each poll moves only new data).
'use strict';

(function () {
  const TOKEN_KEY = 'easytorch.token';
  const LOG_KEY = 'easytorch.logScale';
  const INTERVAL_KEY = 'easytorch.interval';
  const MAX_POINTS = 200000;   // per chart; the daemon keeps 100000 by default

  const $ = (id) => document.getElementById(id);
  const els = {
    status: $('status'), auth: $('auth'), authReason: $('auth-reason'), tokenForm: $('token-form'),
    token: $('token'), forget: $('forget-token'), showToken: $('show-token'),
    models: $('models'), empty: $('empty'), logScale: $('log-scale'), interval: $('interval'),
    template: $('model-card'),
  };

  const store = {
    get(k) { try { return window.localStorage.getItem(k); } catch (e) { return null; } },
    set(k, v) { try { window.localStorage.setItem(k, v); } catch (e) { /* private mode */ } },
    del(k) { try { window.localStorage.removeItem(k); } catch (e) { /* private mode */ } },
  };

  const state = {
    token: store.get(TOKEN_KEY) || '',
    logScale: store.get(LOG_KEY) !== '0',   // log scale unless turned off: losses span decades
    interval: Number(store.get(INTERVAL_KEY) || 1000),
    models: new Map(),   // name -> entry (see newEntry)
    timer: null,
    polling: false,
    needToken: false,
  };

  class HttpError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  // GET a daemon path (relative to the page, so a prefix in front of the
  // daemon keeps working) and return its JSON; throws HttpError.
  async function api(path) {
    const headers = { Accept: 'application/json' };
    if (state.token) headers.Authorization = 'Bearer ' + state.token;
    let res;
    try {
      res = await fetch(path, { headers, cache: 'no-store' });
    } catch (e) {
      throw new HttpError(0, 'cannot reach the daemon (' + e.message + ')');
    }
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (!res.ok) {
      const msg = body && typeof body.error === 'string' ? body.error : res.statusText;
      throw new HttpError(res.status, msg || ('HTTP ' + res.status));
    }
    return body;
  }

  // ---- formatting -----------------------------------------------------------
  function fmtNum(v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) return '–';
    if (!Number.isFinite(v)) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(digits - 1).replace('e+', 'e');
    return Number(v.toPrecision(digits)).toString();
  }

  // torch's reprs, shortened: Conv2d(1→8, k=3, p=1), BatchNorm1d(200), Embedding(27, 10),
  // MaxPool2d(2); fields beyond the usual ones are listed as key=value.
  const SHORT = { kernel_size: 'k', stride: 's', padding: 'p', dilation: 'd', groups: 'g' };
  function tup(v) { return Array.isArray(v) ? v.join('×') : String(v); }
  function rest(l, known) {
    return Object.keys(l).filter((k) => k !== 'type' && !known.includes(k))
      .map((k) => (SHORT[k] || k) + '=' + (SHORT[k] ? tup(l[k]) : JSON.stringify(l[k])));
  }
  function call(name, first, more) {
    const all = first.concat(more);
    return name + '(' + all.join(', ') + ')';
  }
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

  function typeName(x) {
    if (!x) return '';
    return typeof x === 'string' ? x : (x.type || '');
  }

  function describeSpec(spec) {
    if (!spec || !Array.isArray(spec.layers)) return '';
    const parts = [spec.layers.map(describeLayer).join(' · ')];
    const extra = [typeName(spec.loss), typeName(spec.optimizer), typeName(spec.scheduler)].filter(Boolean);
    if (extra.length) parts.push(extra.join(', '));
    return parts.join(' — ');
  }

  // The learning rate the next step uses. The daemon's description may carry
  // it ("lr"); otherwise it follows from the optimizer's lr, the scheduler
  // (stepped once per optimizer step, as the contract says) and the step count.
  function currentLr(info, step) {
    if (info && typeof info.lr === 'number') return info.lr;
    const spec = info && info.spec;
    if (!spec || !spec.optimizer || typeof spec.optimizer !== 'object') return null;
    const defaults = { SGD: 1e-3, Adam: 1e-3, AdamW: 1e-3, Adagrad: 1e-2, RMSprop: 1e-2 };
    let lr = typeof spec.optimizer.lr === 'number' ? spec.optimizer.lr : defaults[spec.optimizer.type];
    if (typeof lr !== 'number') return null;
    const s = spec.scheduler;
    const t = step || 0;
    if (s && typeof s === 'object') {
      if (s.type === 'StepLR' && s.step_size > 0) lr *= Math.pow(s.gamma ?? 0.1, Math.floor(t / s.step_size));
      else if (s.type === 'ExponentialLR') lr *= Math.pow(s.gamma, t);
      else if (s.type === 'CosineAnnealingLR' && s.T_max > 0) {
        const eta = s.eta_min || 0;
        lr = eta + (lr - eta) * (1 + Math.cos(Math.PI * t / s.T_max)) / 2;
      } else if (s.type) return null;   // a scheduler this page does not know
    }
    if (info.spec.optimizer.type === 'Adagrad' && spec.optimizer.lr_decay) {
      lr /= 1 + (t) * spec.optimizer.lr_decay;
    }
    return lr;
  }

  // ---- model cards ------------------------------------------------------------
  function newEntry(name) {
    const card = els.template.content.firstElementChild.cloneNode(true);
    const q = (sel) => card.querySelector(sel);
    const id = 'model-' + name.replace(/[^A-Za-z0-9_-]/g, '_');
    card.id = id;
    card.dataset.model = name;
    card.setAttribute('aria-labelledby', id + '-name');
    q('.name').textContent = name;
    q('.name').id = id + '-name';
    const entry = {
      name, card, steps: [], losses: [], since: null, step: null, loss: null, info: null,
      el: { arch: q('.arch'), step: q('.step'), loss: q('.loss'), lr: q('.lr'), params: q('.params'),
        canvas: q('canvas'), caption: q('.caption') },
      hover: null,
    };
    entry.el.canvas.addEventListener('mousemove', (ev) => hover(entry, ev));
    entry.el.canvas.addEventListener('mouseleave', () => { entry.hover = null; render(entry); });
    return entry;
  }

  function resetEntry(entry) {
    entry.steps = []; entry.losses = []; entry.since = null; entry.step = null; entry.info = null; entry.infoStep = null;
  }

  function insertSorted(entry) {
    const cards = Array.from(els.models.children);
    const after = cards.find((c) => c.dataset.model > entry.name);
    els.models.insertBefore(entry.card, after || null);
  }

  function render(entry) {
    const { el, card } = entry;
    const step = entry.step ?? 0;
    el.step.textContent = step.toLocaleString('en-US');
    el.loss.textContent = fmtNum(entry.loss, 4);
    el.lr.textContent = fmtNum(currentLr(entry.info, step), 3);
    el.params.textContent = entry.info && typeof entry.info.parameters === 'number'
      ? entry.info.parameters.toLocaleString('en-US') : '–';
    el.arch.textContent = describeSpec(entry.info && entry.info.spec);
    card.dataset.step = String(step);
    card.dataset.points = String(entry.steps.length);
    drawChart(entry);
  }

  // ---- the chart -------------------------------------------------------------------
  function niceStep(span, count) {
    const raw = span / Math.max(count, 1);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const n = raw / mag;
    return (n < 1.5 ? 1 : n < 3 ? 2 : n < 7 ? 5 : 10) * mag;
  }

  function linearTicks(lo, hi, count) {
    if (!(hi > lo)) return [lo];
    const st = niceStep(hi - lo, count);
    const out = [];
    for (let v = Math.ceil(lo / st) * st; v <= hi + st * 1e-9; v += st) out.push(Math.abs(v) < st * 1e-9 ? 0 : v);
    return out;
  }

  function logTicks(lo, hi) {  // lo, hi are log10 values
    const out = [];
    const d0 = Math.floor(lo), d1 = Math.ceil(hi);
    const decades = d1 - d0;
    const mult = decades <= 2 ? [1, 2, 5] : [1];
    const every = Math.max(1, Math.ceil(decades / 6));
    for (let d = d0; d <= d1; d += every) {
      for (const m of mult) {
        const v = Math.log10(m) + d;
        if (v >= lo - 1e-9 && v <= hi + 1e-9) out.push(v);
      }
    }
    return out;
  }

  function cssVar(name, fallback) {
    const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  }

  function drawChart(entry) {
    const canvas = entry.el.canvas;
    const cssW = canvas.clientWidth || 300, cssH = canvas.clientHeight || 180;
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
      canvas.width = Math.round(cssW * dpr);
      canvas.height = Math.round(cssH * dpr);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    const fg = cssVar('--muted', '#666'), grid = cssVar('--grid', '#ddd'), line = cssVar('--accent', '#c0392b');
    ctx.font = '11px system-ui, sans-serif';

    const log = state.logScale;
    const xs = [], ys = [];
    for (let i = 0; i < entry.steps.length; i++) {
      const y = entry.losses[i];
      if (typeof y !== 'number' || !Number.isFinite(y) || (log && y <= 0)) continue;
      xs.push(entry.steps[i]);
      ys.push(log ? Math.log10(y) : y);
    }
    const n = entry.steps.length;
    canvas.dataset.points = String(n);
    canvas.setAttribute('aria-label', n
      ? 'Loss of ' + entry.name + ' over ' + n + ' steps' + (log ? ' (log scale)' : '') + ', last ' + fmtNum(entry.losses[n - 1], 4)
      : 'Loss of ' + entry.name + ': no training steps yet');
    entry.el.caption.textContent = entry.hover
      ? 'step ' + entry.hover[0].toLocaleString('en-US') + ': loss ' + fmtNum(entry.hover[1], 5)
      : n ? n.toLocaleString('en-US') + ' points, steps ' + entry.steps[0].toLocaleString('en-US') + '–' +
        entry.steps[n - 1].toLocaleString('en-US') + (log ? ', log scale' : '')
        : 'No loss yet: the chart fills as the model trains.';
    if (!xs.length) {
      ctx.fillStyle = fg;
      ctx.textAlign = 'center';
      ctx.fillText(n ? 'no positive loss to plot on a log scale' : 'waiting for training…', cssW / 2, cssH / 2);
      return;
    }

    const left = 52, right = 10, top = 8, bottom = 22;
    const pw = Math.max(10, cssW - left - right), ph = Math.max(10, cssH - top - bottom);
    let x0 = xs[0], x1 = xs[xs.length - 1];
    if (x1 <= x0) { x0 -= 1; x1 += 1; }
    let y0 = Infinity, y1 = -Infinity;
    for (const y of ys) { if (y < y0) y0 = y; if (y > y1) y1 = y; }
    if (y1 - y0 < 1e-12) { const pad = log ? 0.5 : Math.abs(y0) * 0.1 || 1; y0 -= pad; y1 += pad; }
    else { const pad = (y1 - y0) * 0.05; y1 += pad; if (log || y0 - pad < 0 === y0 < 0) y0 -= pad; }
    if (!log && y0 > 0 && y0 < (y1 - y0) * 0.2) y0 = 0;   // losses: start at 0 when it's close
    const X = (v) => left + (v - x0) / (x1 - x0) * pw;
    const Y = (v) => top + (1 - (v - y0) / (y1 - y0)) * ph;

    // grid and labels
    ctx.strokeStyle = grid; ctx.fillStyle = fg; ctx.lineWidth = 1;
    ctx.textAlign = 'right'; ctx.textBaseline = 'middle';
    const yt = log ? logTicks(y0, y1) : linearTicks(y0, y1, Math.max(2, Math.floor(ph / 40)));
    for (const t of yt) {
      const py = Math.round(Y(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(left, py); ctx.lineTo(left + pw, py); ctx.stroke();
      ctx.fillText(log ? fmtNum(Math.pow(10, t), 1) : fmtNum(t, 2), left - 6, py);
    }
    ctx.textAlign = 'center'; ctx.textBaseline = 'top';
    const xt = linearTicks(x0, x1, Math.max(2, Math.floor(pw / 80))).filter((t) => Number.isInteger(t) || t % 1 === 0);
    for (const t of xt) {
      const px = Math.round(X(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(px, top + ph); ctx.lineTo(px, top + ph + 4); ctx.stroke();
      const label = t.toLocaleString('en-US');
      const half = ctx.measureText(label).width / 2;
      ctx.fillText(label, Math.min(Math.max(px, half + 1), cssW - half - 1), top + ph + 6);
    }
    ctx.beginPath(); ctx.moveTo(left + 0.5, top); ctx.lineTo(left + 0.5, top + ph); ctx.lineTo(left + pw, top + ph + 0.5);
    ctx.stroke();

    // The raw loss, and over it a moving average (EMA) once there are enough
    // points for minibatch noise to hide the trend, as TensorBoard does.
    ctx.save();
    ctx.beginPath(); ctx.rect(left, top, pw, ph); ctx.clip();
    ctx.strokeStyle = line; ctx.lineJoin = 'round';
    const span = Math.floor(xs.length / 60);
    const smooth = span >= 3;
    ctx.globalAlpha = smooth ? 0.3 : 1;
    ctx.lineWidth = smooth ? 1 : 1.5;
    traceLine(ctx, xs, ys, X, Y, left, pw, true);
    if (smooth) {
      const a = 2 / (span + 1), sm = new Array(ys.length);
      sm[0] = ys[0];
      for (let i = 1; i < ys.length; i++) sm[i] = sm[i - 1] + a * (ys[i] - sm[i - 1]);
      ctx.globalAlpha = 1;
      ctx.lineWidth = 2;
      traceLine(ctx, xs, sm, X, Y, left, pw, false);
    }
    ctx.fillStyle = line;
    const lx = X(xs[xs.length - 1]), ly = Y(ys[ys.length - 1]);
    ctx.beginPath(); ctx.arc(lx, ly, 3, 0, Math.PI * 2); ctx.fill();
    if (entry.hover) {
      const hy = log ? Math.log10(entry.hover[1]) : entry.hover[1];
      if (Number.isFinite(hy)) {
        ctx.strokeStyle = fg; ctx.lineWidth = 1;
        ctx.beginPath(); ctx.moveTo(X(entry.hover[0]), top); ctx.lineTo(X(entry.hover[0]), top + ph); ctx.stroke();
        ctx.beginPath(); ctx.arc(X(entry.hover[0]), Y(hy), 3.5, 0, Math.PI * 2); ctx.fill();
      }
    }
    ctx.restore();
    entry.plot = { left, pw, x0, x1 };
  }

  // Strokes the polyline through (xs, ys). With more points than pixels it
  // keeps, per pixel column, the min and max (envelope) or the last value.
  function traceLine(ctx, xs, ys, X, Y, left, pw, envelope) {
    ctx.beginPath();
    if (xs.length > pw * 2) {
      let col = -1, lo = 0, hi = 0, last = 0, first = true;
      const flush = () => {
        if (col < 0) return;
        const px = left + col + 0.5;
        const a = envelope ? hi : last;
        if (first) { ctx.moveTo(px, Y(a)); first = false; } else ctx.lineTo(px, Y(a));
        if (envelope) ctx.lineTo(px, Y(lo));
      };
      for (let i = 0; i < xs.length; i++) {
        const c = Math.floor(X(xs[i]) - left);
        if (c !== col) { flush(); col = c; lo = hi = ys[i]; }
        else { if (ys[i] < lo) lo = ys[i]; if (ys[i] > hi) hi = ys[i]; }
        last = ys[i];
      }
      flush();
    } else {
      for (let i = 0; i < xs.length; i++) {
        if (i === 0) ctx.moveTo(X(xs[i]), Y(ys[i])); else ctx.lineTo(X(xs[i]), Y(ys[i]));
      }
    }
    ctx.stroke();
  }

  function hover(entry, ev) {
    const p = entry.plot;
    if (!p || !entry.steps.length) return;
    const rect = entry.el.canvas.getBoundingClientRect();
    const s = p.x0 + (ev.clientX - rect.left - p.left) / p.pw * (p.x1 - p.x0);
    // steps are increasing: binary search for the nearest
    let lo = 0, hi = entry.steps.length - 1;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (entry.steps[mid] < s) lo = mid + 1; else hi = mid; }
    if (lo > 0 && Math.abs(entry.steps[lo - 1] - s) < Math.abs(entry.steps[lo] - s)) lo--;
    entry.hover = [entry.steps[lo], entry.losses[lo]];
    render(entry);
  }

  // ---- polling -------------------------------------------------------------------------
  async function pollModel(entry, summary) {
    const path = 'v1/models/' + encodeURIComponent(entry.name);
    if (entry.step !== null && summary.step < entry.step) resetEntry(entry);  // deleted and made again
    // The description carries the lr in effect (it moves with a scheduler):
    // fetch it again whenever the step count moved.
    if (!entry.info || entry.infoStep !== summary.step) {
      entry.info = await api(path);
      entry.infoStep = summary.step;
    }
    if (entry.since === null || summary.step !== entry.step || entry.steps.length === 0) {
      const q = entry.since === null ? '' : '?since=' + entry.since;
      const res = await api(path + '/loss' + q);
      for (const pt of res.history || []) {
        const s = Number(pt[0]);
        if (entry.steps.length && s <= entry.steps[entry.steps.length - 1]) continue;
        entry.steps.push(s);
        entry.losses.push(pt[1] === null ? NaN : Number(pt[1]));
      }
      if (entry.steps.length > MAX_POINTS) {  // like the daemon: drop the oldest half
        const cut = entry.steps.length - MAX_POINTS / 2;
        entry.steps.splice(0, cut);
        entry.losses.splice(0, cut);
      }
      if (entry.steps.length) entry.since = entry.steps[entry.steps.length - 1];
      else entry.since = null;
      entry.step = typeof res.step === 'number' ? res.step : summary.step;
    }
    entry.loss = summary.loss ?? (entry.losses.length ? entry.losses[entry.losses.length - 1] : null);
    if (typeof summary.step === 'number' && summary.step > entry.step) entry.step = summary.step;
    render(entry);
  }

  async function poll() {
    if (state.polling) return;
    state.polling = true;
    try {
      const list = await api('v1/models');
      const models = (list && list.models) || [];
      const seen = new Set();
      await Promise.all(models.map(async (m) => {
        seen.add(m.name);
        let entry = state.models.get(m.name);
        if (!entry) {
          entry = newEntry(m.name);
          state.models.set(m.name, entry);
          insertSorted(entry);
        }
        try {
          await pollModel(entry, m);
        } catch (e) {
          if (e.status === 404) { seen.delete(m.name); return; }  // deleted meanwhile
          throw e;
        }
      }));
      for (const [name, entry] of state.models) {
        if (!seen.has(name)) { entry.card.remove(); state.models.delete(name); }
      }
      els.models.dataset.count = String(state.models.size);
      els.empty.hidden = state.models.size > 0;
      state.needToken = false;
      if (!els.auth.dataset.userOpened) els.auth.hidden = true;
      const n = state.models.size;
      setStatus('ok', n + (n === 1 ? ' model' : ' models') + ' · updated ' + new Date().toLocaleTimeString());
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
    if (state.interval > 0 && !state.needToken) state.timer = setTimeout(poll, document.hidden ? Math.max(state.interval, 5000) : state.interval);
  }

  function setStatus(kind, text) {
    els.status.textContent = text;
    els.status.dataset.state = kind;
  }

  // ---- controls ---------------------------------------------------------------------------
  els.logScale.checked = state.logScale;
  els.logScale.addEventListener('change', () => {
    state.logScale = els.logScale.checked;
    store.set(LOG_KEY, state.logScale ? '1' : '0');
    for (const entry of state.models.values()) render(entry);
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
  document.addEventListener('visibilitychange', () => { if (!document.hidden) poll(); });
  if (typeof ResizeObserver === 'function') {
    let pending = false;
    new ResizeObserver(() => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => { pending = false; for (const e of state.models.values()) drawChart(e); });
    }).observe(els.models);
  }
  const mq = window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)');
  if (mq && mq.addEventListener) mq.addEventListener('change', () => { for (const e of state.models.values()) drawChart(e); });

  poll();
})();
