// easytorch dashboard: when to draw.  What the event stream changes is drawn in sweeps, at
// most one every intervalMs (what arrives meanwhile is drawn together: 100 training models
// push ~1000 steps a second); a sweep's work is spread over animation frames, at most
// budgetMs of it per frame (at least one item), so no frame is late because ten charts were
// redrawn in it.  What the user does (smoothing, scale, x axis, a resize, a scroll) starts
// a sweep at the next animation frame.  Items are keys (model names, or the page's own
// symbols); an item changed again before it is drawn is drawn once.
'use strict';

window.ETFrames = (function () {
  // draw(key): draws one item (its cost counts against the frame's budget).
  function scheduler({ draw, intervalMs = 250, budgetMs = 6 }) {
    const todo = new Set();   // to draw, in order, in this sweep's frames
    const due = new Set();    // changed since the sweep began
    let frame = 0, timer = 0, sweepNext = false, lastSweep = -Infinity;

    function request() { if (!frame) frame = requestAnimationFrame(run); }
    function run() {
      frame = 0;
      if (sweepNext) {
        sweepNext = false;
        lastSweep = performance.now();
        for (const k of due) todo.add(k);
        due.clear();
      }
      const start = performance.now();
      for (const k of todo) {
        todo.delete(k);
        draw(k);
        if (performance.now() - start >= budgetMs) break;
      }
      if (todo.size) request();
      else if (due.size) later();
    }
    function later() {
      if (timer || sweepNext) return;
      const wait = lastSweep + intervalMs - performance.now();
      if (wait <= 0) { sweepNext = true; request(); return; }
      timer = setTimeout(() => { timer = 0; sweepNext = true; request(); }, wait);
    }
    // A live change: drawn in the next sweep.
    function mark(key) {
      if (todo.has(key)) return;   // still waiting in this sweep: drawn with what it has then
      due.add(key);
      later();
    }
    // The user's change: drawn from the next animation frame on.
    function now(keys) {
      for (const k of keys) due.add(k);
      clearTimeout(timer);
      timer = 0;
      sweepNext = true;
      request();
    }
    // (for tests and benchmarks) nothing waits to be drawn
    function idle() { return !todo.size && !due.size; }
    return { mark, now, idle };
  }
  return { scheduler };
})();
