// easytorch dashboard: a model's chart columns -- x, the smoothed and the raw training loss,
// each validation metric at its step, the learning rate -- kept from one drawing to the
// next and only appended to, so drawing a chart after new steps costs the new points, not
// the whole history (at 100,000 points, rebuilding, smoothing and re-mapping every point 4
// times a second for each chart on screen was most of the page's work).  Rebuilt from the
// entry when what they show changes (x axis, log scale, smoothing, the metrics) or when the
// entry's points were replaced (a reset or a trim bumps e.epoch).
'use strict';

window.ETColumns = (function () {
  const C = window.ETCharts;

  // A loss or metric value as the chart draws it: null where it cannot (not finite, or not
  // positive for the loss on a log scale).
  function drawable(y, k, log) {
    return Number.isFinite(y) && ((k !== 'loss' && !k.startsWith('losses.')) || !log || y > 0) ? y : null;
  }

  // The columns of entry e for view {xMode, log, smoothing} and the metrics (in order), up
  // to date.  Returns {data: [x, smoothed, raw, ...metrics], lr, steps}: parallel arrays
  // (only the points with a finite x), owned by e and valid until the next call.
  function of(e, view, metrics) {
    const key = view.xMode + '|' + view.log + '|' + view.smoothing + '|' + metrics.join(',');
    let c = e.cols;
    if (!c || c.key !== key || c.epoch !== e.epoch || c.src > e.steps.length) {
      c = e.cols = { key, epoch: e.epoch, view, metrics, src: 0, t0: NaN,
        steps: [], x: [], sm: [], raw: [], lr: [], val: metrics.map(() => []),
        smooth: C.smoother(view.smoothing), valSeen: 0, pending: [] };
      c.data = [c.x, c.sm, c.raw].concat(c.val);
    }
    append(c, e);
    place(c, e);
    return c;
  }

  function append(c, e) {
    const { xMode, log } = c.view;
    for (let i = c.src; i < e.steps.length; i++) {
      let x;
      if (xMode === 'step') x = e.steps[i];
      else {
        const t = e.times[i];
        if (xMode === 'wall') x = t;
        else {
          if (!Number.isFinite(c.t0) && Number.isFinite(t)) c.t0 = t;
          x = t - c.t0;
        }
      }
      if (!Number.isFinite(x)) continue;
      const raw = drawable(e.losses[i], 'loss', log);
      c.steps.push(e.steps[i]);
      c.x.push(x);
      c.raw.push(raw);
      c.sm.push(c.smooth(raw === null ? NaN : raw));
      c.lr.push(Number.isFinite(e.lrs[i]) ? e.lrs[i] : null);
      for (const col of c.val) col.push(null);
    }
    c.src = e.steps.length;
  }

  // The validation entries at the column of their step (the last one of a step wins); one
  // for a step not drawn yet waits for it.
  function place(c, e) {
    if (!c.metrics.length) { c.valSeen = e.val.length; return; }
    const todo = c.pending.concat(e.val.slice(c.valSeen));
    c.valSeen = e.val.length;
    c.pending = [];
    const last = c.steps.length ? c.steps[c.steps.length - 1] : -Infinity;
    for (const v of todo) {
      const j = indexOf(c.steps, v.step);
      if (j < 0) { if (v.step > last) c.pending.push(v); continue; }
      // "losses.i": a loss list's entry i (the entry's "losses"), else a metric by name
      const value = (k) => (k.startsWith('losses.') ? (v.losses || [])[Number(k.slice(7))]
        : (v.metrics || {})[k]);
      c.metrics.forEach((k, m) => { c.val[m][j] = drawable(value(k), k, c.view.log); });
    }
  }

  // Binary search of an increasing array; -1 when absent.
  function indexOf(a, v) {
    let lo = 0, hi = a.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (a[mid] === v) return mid;
      if (a[mid] < v) lo = mid + 1; else hi = mid - 1;
    }
    return -1;
  }

  return { of, drawable, indexOf };
})();
