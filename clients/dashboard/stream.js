// easytorch dashboard: the event stream, read in a dedicated Worker (live.js starts it) so
// that Blink's parsing of the stream and JSON.parse of its records -- about 100 KB a
// quarter second with 100 models training -- happen off the page's main thread.  The worker
// has its own EventSource on GET /v1/events (the URL the page gives it); it posts the page
// what the records carry, in order, as one message per record:
//   {kind: 'open'} / {kind: 'error', closed} / {kind: 'unsupported'} (no EventSource here)
//   {kind: 'events', id: the record's Last-Event-ID, items: [[type, data], ...]}
// where a model's consecutive step events of one record are merged into one packed item,
//   ['steps', {model, step, loss, lr, time, steps, losses, lrs, times}]
// whose steps/losses/lrs/times are Float64Arrays (transferred, not copied; NaN where the
// event had null or nothing).  Every other event goes as the daemon sent it.  The page
// closes the stream with {cmd: 'close'} and opens one with {cmd: 'open', url}.
'use strict';

// (one function scope: on the page these names stay out of window)
(function () {
  const TYPES = ['step', 'batch', 'evaluation', 'job', 'nonfinite', 'hyperparameters', 'version', 'created',
    'deleted', 'reset', 'dropped'];
  // self.__records: the records this worker's EventSource got, by type (what the dashboard
  // test reads with Playwright's worker.evaluate: the stream is consumed here, not on the page).
  let es = null;

  const parse = (data) => { try { return JSON.parse(data); } catch (e) { return null; } };
  const num = (v) => (typeof v === 'number' ? v : NaN);

  // One packed item per run of a model's step events: only when the steps go on (a rollback
  // starts over) and every event has its points' own times (without them the page spreads the
  // points over the interval since the previous event, per event).
  function pack(list) {
    const items = [], runs = new Map(), buffers = [];
    for (const x of list) {
      if (!x || typeof x.event !== 'string') continue;
      const d = x.data;
      const model = d && d.model;
      if (x.event !== 'step' || typeof model !== 'string') {
        if (typeof model === 'string') runs.delete(model);
        items.push([x.event, d]);
        continue;
      }
      const pts = Array.isArray(d.steps) && d.steps.length ? d.steps : [[d.step, d.loss]];
      const own = Array.isArray(d.times) && d.times.length === pts.length ? d.times : null;
      let p = runs.get(model);
      if (!p || !own || !p.own || !(Number(pts[0][0]) > p.steps[p.steps.length - 1])) {
        p = { model, own: !!own, steps: [], losses: [], lrs: [], times: [] };
        items.push(['steps', p]);
        runs.set(model, p);
      }
      for (let i = 0; i < pts.length; i++) {
        const pt = pts[i];
        p.steps.push(Number(pt[0]));
        p.losses.push(pt[1] === null ? NaN : Number(pt[1]));
        p.lrs.push(num(d.lr));
        p.times.push(own ? num(own[i]) : NaN);
      }
      p.step = d.step;
      p.loss = d.loss;
      p.lr = d.lr;
      p.time = d.time;
    }
    for (const it of items) {
      if (it[0] !== 'steps') continue;
      const p = it[1];
      for (const k of ['steps', 'losses', 'lrs', 'times']) {
        p[k] = Float64Array.from(p[k]);
        buffers.push(p[k].buffer);
      }
    }
    return { items, buffers };
  }

  function send(id, list) {
    const { items, buffers } = pack(list);
    if (items.length) self.postMessage({ kind: 'events', id, items }, buffers);
  }

  function count(t) { self.__records[t] = (self.__records[t] || 0) + 1; }

  function close() {
    if (es) es.close();
    es = null;
  }

  function open(url) {
    close();
    let s;
    try {
      if (typeof EventSource !== 'function') throw new Error('no EventSource in a worker');
      s = new EventSource(url);
    } catch (e) {
      self.postMessage({ kind: 'unsupported' });
      return;
    }
    es = s;
    s.onopen = () => { if (es === s) self.postMessage({ kind: 'open' }); };
    s.onerror = () => { if (es === s) self.postMessage({ kind: 'error', closed: s.readyState === EventSource.CLOSED }); };
    // one event per record (a daemon without coalesce), or many in an "events" record
    for (const t of TYPES) {
      s.addEventListener(t, (ev) => {
        count(t);
        if (es === s) send(ev.lastEventId, [{ event: t, data: t === 'reset' || t === 'dropped' ? {} : parse(ev.data) }]);
      });
    }
    s.addEventListener('events', (ev) => {
      count('events');
      const list = parse(ev.data);
      if (es === s && Array.isArray(list)) send(ev.lastEventId, list);
    });
  }

  // In a worker: follow the stream.  On the page (index.html loads this file too) only pack()
  // is used, by live.js's fallback that reads the stream on the main thread.
  if (typeof WorkerGlobalScope === 'function' && self instanceof WorkerGlobalScope) {
    self.__records = {};
    self.onmessage = (m) => {
      const c = m.data || {};
      if (c.cmd === 'open' && typeof c.url === 'string') open(c.url);
      else if (c.cmd === 'close') close();
    };
  } else {
    window.ETStream = { pack, parse, TYPES };
  }
})();
