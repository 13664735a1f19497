// easytorch dashboard: the charts (uPlot, vendored from npm at 1.6.32 as uPlot.iife.min.js).
// A chart is made once and then only given new data (setData): no full redraws per event.
'use strict';

window.ETCharts = (function () {
  // Okabe & Ito's colour-blind-safe palette (train, validation, then further series/models)
  const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#F0E442', '#999999'];
  const MARKER_COLORS = { nonfinite: '#D55E00', hyperparameters: '#009E73', truncated: '#999999',
    version: '#CC79A7', rollback: '#CC79A7' };

  function css(name, fallback) {
    const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  }

  // TensorBoard's smoothing: an exponential moving average, debiased at the start
  // (so the first points are not pulled towards 0); non-finite values are gaps.  A
  // smoother takes the values one at a time (a chart's columns are only appended to).
  function smoother(weight) {
    if (!(weight > 0)) return (y) => (Number.isFinite(y) ? y : null);
    let last = 0, n = 0;
    return (y) => {
      if (!Number.isFinite(y)) return null;
      last = last * weight + (1 - weight) * y;
      n++;
      return last / (1 - Math.pow(weight, n));
    };
  }
  function smooth(ys, weight) { return ys.map(smoother(weight)); }

  // Vertical lines at the markers' x (divergence, hyperparameter changes, truncation).
  function markerHook(getMarkers) {
    return (u) => {
      const ms = getMarkers() || [];
      if (!ms.length) return;
      const ctx = u.ctx, top = u.bbox.top, h = u.bbox.height;
      const x0 = u.scales.x.min, x1 = u.scales.x.max;
      ctx.save();
      ctx.lineWidth = Math.max(1, window.devicePixelRatio || 1);
      ctx.setLineDash([4 * (window.devicePixelRatio || 1), 3 * (window.devicePixelRatio || 1)]);
      for (const m of ms) {
        if (!(m.x >= x0 && m.x <= x1)) continue;
        const px = Math.round(u.valToPos(m.x, 'x', true)) + 0.5;
        ctx.strokeStyle = MARKER_COLORS[m.kind] || '#999999';
        ctx.beginPath(); ctx.moveTo(px, top); ctx.lineTo(px, top + h); ctx.stroke();
      }
      ctx.restore();
    };
  }

  // Relative time (seconds since a model's first step) as TensorBoard's "relative" axis,
  // but in the unit that reads best: 45 s, 12.5 min, 3.2 h.
  function fmtDuration(v) {
    if (v === null || v === undefined) return '';
    const a = Math.abs(v);
    if (a < 120) return Number(v.toPrecision(3)) + ' s';
    if (a < 7200) return Number((v / 60).toPrecision(3)) + ' min';
    return Number((v / 3600).toPrecision(3)) + ' h';
  }

  function fmtTick(v) {
    if (v === null || v === undefined) return '';
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(1).replace('e+', 'e');
    return String(Number(v.toPrecision(3)));
  }

  // The x axis: 'step' (optimizer steps), 'wall' (Unix seconds, drawn as UTC dates) or
  // 'relative' (seconds since the model's first recorded step).
  const X_LABELS = { step: 'step (optimizer steps)', wall: 'wall time (UTC)', relative: 'relative time (since the first step)' };

  // Zoom: a drag selects an x range, a double-click (or resetZoom) goes back to all the data.
  // The range a user picked is kept while data keeps arriving (update() re-applies it) and
  // shared by the charts of one sync group (the model page's loss and learning-rate charts).
  const groups = new Map();   // sync key -> Set of charts
  function group(u) { return u._et.sync ? groups.get(u._et.sync) || new Set([u]) : new Set([u]); }
  function showRange(u) {
    const el = u.root.parentNode;
    if (!el || !el.dataset) return;
    const s = u.scales.x;
    el.dataset.xMin = String(s.min);
    el.dataset.xMax = String(s.max);
    el.dataset.zoomed = u._et.zoom ? '1' : '0';
  }
  function setZoom(u, min, max) {
    for (const c of group(u)) {
      c._et.zoom = min === null ? null : { min, max };
      if (min === null) c.setData(c.data, true); else c.setScale('x', { min, max });
      showRange(c);
    }
  }
  function resetZoom(u) { setZoom(u, null, null); }
  // New data for a chart, keeping a zoomed range.
  // Drawn at once (uPlot's batch), not in a microtask after the caller's frame budget.
  function update(u, data) {
    const z = u._et.zoom;
    u.batch(() => {
      u.setData(data, !z);
      if (z) u.setScale('x', { min: z.min, max: z.max });
    });
    showRange(u);
  }
  // Moves a zoomed (or the whole) range by a quarter of its width.
  function pan(u, dir) {
    const s = u.scales.x, w = s.max - s.min;
    if (!(w > 0)) return;
    setZoom(u, s.min + dir * w / 4, s.max + dir * w / 4);
  }

  // A chart of several series over one x. spec: {el, series: [{label, color, width, dash,
  // points, scale}], log, xMode, yLabel, height, width (the box's, when known), markers: () => [...], sync}
  function make(spec) {
    const fg = css('--muted', '#666'), grid = css('--grid', '#ddd');
    const xMode = spec.xMode || 'step';
    const axis = (label, scale, side) => {
      const a = { label, scale, stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } };
      if (side !== undefined) { a.side = side; a.size = 60; }
      if (scale === 'x' && xMode === 'relative') a.values = (u, vals) => vals.map(fmtDuration);
      else if (!(scale === 'x' && xMode === 'wall')) a.values = (u, vals) => vals.map(fmtTick);
      return a;
    };
    const scales = { x: { time: xMode === 'wall' }, y: { distr: spec.log ? 3 : 1 } };
    const axes = [axis(spec.xLabel || X_LABELS[xMode], 'x'), axis(spec.yLabel, 'y')];
    if (spec.y2Label) {
      scales.y2 = { distr: 1, range: (u, lo, hi) => [Math.min(0, lo), Math.max(1, hi)] };
      axes.push(Object.assign(axis(spec.y2Label, 'y2', 1), { grid: { show: false } }));
    }
    const xValue = xMode === 'relative' ? (u, v) => (v === null ? '–' : fmtDuration(v)) : undefined;
    const series = [{ label: { step: 'step', wall: 'time', relative: 'relative' }[xMode], value: xValue }]
      .concat(spec.series.map((s) => ({
        label: s.label, stroke: s.color, width: s.width || 1.5, dash: s.dash, scale: s.scale || 'y',
        spanGaps: true, points: { show: !!s.points, size: 5, fill: s.color },
        value: (u, v) => (v === null || v === undefined ? '–' : fmtTick(v)),
      })));
    if (!xValue) delete series[0].value;
    const width = Math.max(200, spec.width || spec.el.clientWidth || 300);
    let picked = false;   // the next x scale change is a user's drag
    const opts = {
      width, height: spec.height || 180, scales, axes, series,
      legend: { show: spec.legend !== false },
      cursor: { sync: spec.sync ? { key: spec.sync, setSeries: false } : undefined,
        drag: { x: true, y: false } },
      hooks: {
        draw: spec.markers ? [markerHook(spec.markers)] : [],
        setSelect: [(u) => { if (u.select.width > 0) picked = true; }],
        setScale: [(u, key) => {
          if (key !== 'x') return;
          if (picked) { picked = false; u._et.zoom = { min: u.scales.x.min, max: u.scales.x.max }; }
          showRange(u);
        }],
      },
    };
    const empty = [[]].concat(spec.series.map(() => []));
    const u = new uPlot(opts, empty, spec.el);
    u._et = { zoom: null, sync: spec.sync || null, xMode };
    if (spec.sync) {
      if (!groups.has(spec.sync)) groups.set(spec.sync, new Set());
      groups.get(spec.sync).add(u);
    }
    // uPlot's own double-click handler autoscales x; the group and the kept range follow
    u.over.addEventListener('dblclick', () => resetZoom(u));
    return u;
  }

  function destroy(u) {
    if (!u) return;
    if (u._et.sync && groups.has(u._et.sync)) {
      const g = groups.get(u._et.sync);
      g.delete(u);
      if (!g.size) groups.delete(u._et.sync);
    }
    u.destroy();
  }

  // Keeps a chart the width of its box (width: the box's, when the caller measured it).
  function fit(u, el, width) {
    const box = width === undefined ? el.clientWidth : width;
    if (!(box > 0)) return;   // not laid out (a card skipped off screen): keep the size
    const w = Math.max(200, box);
    if (w && Math.abs(w - u.width) > 2) u.setSize({ width: w, height: u.height });
  }

  // CSV of columns (header row; nulls as empty cells).
  function csv(header, cols) {
    const n = cols.length ? cols[0].length : 0;
    const lines = [header.join(',')];
    for (let i = 0; i < n; i++)
      lines.push(cols.map((c) => (c[i] === null || c[i] === undefined || Number.isNaN(c[i]) ? '' : String(c[i]))).join(','));
    return lines.join('\n') + '\n';
  }

  return { PALETTE, MARKER_COLORS, X_LABELS, smooth, smoother, make, destroy, update, fit, csv, fmtTick, fmtDuration,
    setZoom, resetZoom, pan };
})();
