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
  // (so the first points are not pulled towards 0); non-finite values are gaps.
  function smooth(ys, weight) {
    if (!(weight > 0)) return ys.map((y) => (Number.isFinite(y) ? y : null));
    const out = new Array(ys.length);
    let last = 0, n = 0;
    for (let i = 0; i < ys.length; i++) {
      const y = ys[i];
      if (!Number.isFinite(y)) { out[i] = null; continue; }
      last = last * weight + (1 - weight) * y;
      n++;
      out[i] = last / (1 - Math.pow(weight, n));
    }
    return out;
  }

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

  function fmtTick(v) {
    if (v === null || v === undefined) return '';
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(1).replace('e+', 'e');
    return String(Number(v.toPrecision(3)));
  }

  // A chart of several series over one x. spec: {el, series: [{label, color, width, dash,
  // points, scale}], log, xLabel, yLabel, time, height, markers: () => [...], sync, lr: bool}
  function make(spec) {
    const fg = css('--muted', '#666'), grid = css('--grid', '#ddd');
    const axis = (label, scale, side) => {
      const a = { label, scale, stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } };
      if (side !== undefined) { a.side = side; a.size = 60; }
      if (!(scale === 'x' && spec.time)) a.values = (u, vals) => vals.map(fmtTick);
      return a;
    };
    const scales = { x: { time: !!spec.time }, y: { distr: spec.log ? 3 : 1 } };
    const axes = [axis(spec.xLabel, 'x'), axis(spec.yLabel, 'y')];
    if (spec.y2Label) {
      scales.y2 = { distr: 1, range: (u, lo, hi) => [Math.min(0, lo), Math.max(1, hi)] };
      axes.push(Object.assign(axis(spec.y2Label, 'y2', 1), { grid: { show: false } }));
    }
    const series = [{ label: spec.time ? 'time' : 'step' }].concat(spec.series.map((s) => ({
      label: s.label, stroke: s.color, width: s.width || 1.5, dash: s.dash, scale: s.scale || 'y',
      spanGaps: true, points: { show: !!s.points, size: 5, fill: s.color },
      value: (u, v) => (v === null || v === undefined ? '–' : fmtTick(v)),
    })));
    const width = Math.max(200, spec.el.clientWidth || 300);
    const opts = {
      width, height: spec.height || 180, scales, axes, series,
      legend: { show: spec.legend !== false },
      cursor: { sync: spec.sync ? { key: spec.sync, setSeries: false } : undefined,
        drag: { x: true, y: false } },
      hooks: { draw: spec.markers ? [markerHook(spec.markers)] : [] },
    };
    const empty = [[]].concat(spec.series.map(() => []));
    const u = new uPlot(opts, empty, spec.el);
    return u;
  }

  // Keeps a chart the width of its box.
  function fit(u, el) {
    const w = Math.max(200, el.clientWidth || 0);
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

  return { PALETTE, MARKER_COLORS, smooth, make, fit, csv, fmtTick };
})();
