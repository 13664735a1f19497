// easytorch dashboard: keeping up with the daemon.  Live by push: the page follows
// GET /v1/events (EventSource) and applies what the events carry (a step event holds every
// [step, loss] and its wall time since the previous one, an evaluation its metrics, a job its progress), so a
// training model costs no request at all.  It fetches only to fill a gap (a step it missed,
// a "reset" event after the daemon's buffer overflowed) or on rare changes (hyperparameters,
// divergence).  The browser's EventSource reconnects by itself and sends Last-Event-ID, so
// the daemon replays what the page missed (the page polls meanwhile when that takes 10 s).  When the stream is unavailable (an older daemon,
// a proxy that buffers) it polls GET /v1/models every interval instead, and tries the stream
// again every 10 s.  The stream is read in a Worker (stream.js) where the browser can.
'use strict';

ET.live = (function () {
  const { state, els, api, setStatus } = ET;
  const TYPES = ['step', 'batch', 'evaluation', 'job', 'nonfinite', 'hyperparameters', 'version', 'created',
    'deleted'];
  let timer = null, polling = false, es = null, streamTried = 0, reconnectTimer = null;
  let noWorker = typeof Worker !== 'function';
  let streamIn = '';   // where the open stream is read: 'worker' | 'page'

  // ---- polling --------------------------------------------------------------------------
  async function poll() {
    if (polling) return;
    polling = true;
    try {
      await ET.listModels();
      state.needToken = false;
      if (!els.auth.dataset.userOpened) els.auth.hidden = true;
      if (state.detail) await ET.model.refreshJobs(state.detail);
      status();
      if (state.live !== 'stream') connect();
    } catch (e) {
      failed(e);
    } finally {
      polling = false;
      schedule();
    }
  }
  function failed(e) {
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
  }
  function status() {
    const n = state.models.size;
    // (for scripts and tests: where the stream is read, 'worker' or 'page'; '' while polling)
    els.status.dataset.stream = state.live === 'stream' ? streamIn : '';
    setStatus('ok', n + (n === 1 ? ' model' : ' models') + ' · ' +
      (state.live === 'stream' ? 'live (event stream)' : state.live === 'reconnecting' ? 'reconnecting…' : 'polling') +
      ' · updated ' + new Date().toLocaleTimeString());
  }
  function schedule() {
    clearTimeout(timer);
    timer = null;
    if (state.live === 'stream' || state.live === 'reconnecting') return;   // pushed: no polling
    if (state.interval > 0 && !state.needToken)
      timer = setTimeout(poll, document.hidden ? Math.max(state.interval, 5000) : state.interval);
  }

  // ---- the event stream --------------------------------------------------------------------
  // EventSource cannot send an Authorization header: the token goes as ?access_token=.
  // ?coalesce=S: the daemon sends at most one "events" record per S seconds holding every
  // event since the previous one (a JSON array), so 100 training models cost the page a few
  // tasks a second instead of a thousand; the page draws at most every FRAME_MS anyway.
  // The stream is read in a Worker (stream.js: its own EventSource, the records parsed and
  // each model's steps packed into typed arrays there), so the page's main thread only
  // appends and draws; where a Worker cannot be started (or has no EventSource), on the page.
  const COALESCE_S = 0.25;
  const { pack, parse, TYPES: STREAM_TYPES } = window.ETStream;

  // The page's own EventSource, its records packed as the worker packs them.
  function pageSource(url, on) {
    const s = new EventSource(url);
    s.onopen = on.open;
    s.onerror = () => on.error(s.readyState === EventSource.CLOSED);
    // one event per record (a daemon without coalesce), or many in an "events" record
    for (const t of STREAM_TYPES) {
      s.addEventListener(t, (ev) => on.records(ev.lastEventId, pack([{ event: t, data: t === 'reset' || t === 'dropped' ? {} : parse(ev.data) }]).items));
    }
    s.addEventListener('events', (ev) => {
      const list = parse(ev.data);
      if (Array.isArray(list)) on.records(ev.lastEventId, pack(list).items);
    });
    return { where: 'page', close: () => s.close() };
  }
  // A Worker's (stream.js).  new Worker throws where workers are not allowed; a worker that
  // fails to load, or has no EventSource, hands the stream back to the page (on.fallback).
  function workerSource(url, on) {
    const w = new Worker('stream.js');
    w.onmessage = (m) => {
      const x = m.data || {};
      if (x.kind === 'events') on.records(x.id, x.items);
      else if (x.kind === 'open') on.open();
      else if (x.kind === 'error') on.error(x.closed);
      else if (x.kind === 'unsupported') on.fallback();
    };
    w.onerror = (ev) => { ev.preventDefault(); on.fallback(); };
    w.postMessage({ cmd: 'open', url });
    return { where: 'worker', close: () => w.terminate() };
  }

  function connect() {
    if (typeof EventSource !== 'function' || es || state.needToken || Date.now() - streamTried < 10000) return;
    streamTried = Date.now();
    const url = new URL('v1/events?coalesce=' + COALESCE_S + (state.token ? '&access_token=' + encodeURIComponent(state.token) : ''),
      document.baseURI).href;
    let s = null, opened = false;
    const on = {
      open() {
        if (es !== s) return;
        clearTimeout(reconnectTimer);
        const first = !opened;
        opened = true;
        state.live = 'stream';
        streamIn = s.where;
        clearTimeout(timer);
        // A new stream starts from "now": what happened between the last poll and now is
        // fetched once (?since=K per model).  A reconnect of the same EventSource resumes with
        // Last-Event-ID instead (the daemon sends "reset" when it cannot).
        if (first) ET.listModels().then(status, failed);
        else status();
      },
      error(closed) {
        if (es !== s) return;
        if (closed || !opened) {
          // refused (404 from an older daemon, 401): poll, and try the stream again later
          s.close();
          es = null;
          state.live = 'polling';
          poll();
        } else if (state.live === 'stream') {
          // The browser reconnects by itself (with Last-Event-ID, every 2 s, the daemon's
          // retry:) for as long as it takes: the stream is kept.  If that takes 10 s the page
          // polls meanwhile, until the stream is open again (onopen stops the polls).  (Each
          // failed attempt calls onerror again: the 10 s run from the first.)
          state.live = 'reconnecting';
          status();
          clearTimeout(reconnectTimer);
          reconnectTimer = setTimeout(() => {
            if (state.live === 'reconnecting') { state.live = 'polling'; poll(); }
          }, 10000);
        }
      },
      // a record's events, in order (a model's steps packed: ['steps', {...}])
      records(id, items) {
        if (es !== s) return;
        lastEventId = id;
        for (const [t, d] of items) {
          if (t === 'reset') ET.listModels().catch(failed);
          else if (t === 'steps' || TYPES.includes(t)) onEvent(t, d);
        }
      },
      fallback() {
        if (es !== s) return;
        noWorker = true;
        s.close();
        es = null;
        streamTried = 0;
        connect();
      },
    };
    try { s = noWorker ? pageSource(url, on) : workerSource(url, on); } catch (e) {
      if (noWorker) return;
      noWorker = true;
      streamTried = 0;
      connect();
      return;
    }
    es = s;
  }
  let lastEventId = '';

  function onEvent(type, d) {
    const name = d && d.model;
    if (typeof name !== 'string') return;
    if (type === 'deleted') { ET.removeEntry(name); status(); return; }
    const known = state.models.has(name);
    const e = ET.ensureEntry(name);
    if (!known) status();
    if (type === 'created' || !known) {
      ET.refresh(e).catch((err) => { if (err.status === 404) ET.removeEntry(name); });
      return;
    }
    if (e.loading || e.since === null) { e.queue.push([type, d]); return; }
    apply(e, type, d);
  }

  // What one event changes in a model's entry (also for events queued while it loaded).
  function apply(e, type, d) {
    if (type === 'steps') return applySteps(e, d);
    if (type === 'evaluation') {
      ET.addValidation(e, { step: d.step, job: d.job, metrics: d.metrics });
    } else if (type === 'job') {
      ET.model.jobEvent(e, d);
      if (d.state !== 'running' && d.state !== 'queued') e.lastMoved = Date.now();
    } else if (type === 'batch') {
      if (e.info) e.info.pending_batches = d.pending_batches;
      if (typeof d.loss === 'number') e.loss = d.loss;
    } else if (type === 'nonfinite' || type === 'hyperparameters') {
      // rare: the description (status, lr, hyperparameters) and the markers, fetched
      if (e.info && d.status) e.info.status = d.status;
      ET.refresh(e).catch(() => {});
    } else if (type === 'version') {
      // frozen, deleted, removed, serving, rolled_back: the description (serving, versions)
      // and the markers; a rollback rewinds the history
      if (d.action === 'rolled_back') ET.resetEntry(e);
      ET.refresh(e).catch(() => {});
      if (state.detail === e.name && ET.versions) ET.versions.load();
    }
    ET.changed(e);
  }

  // A model's steps, packed (stream.js): steps/losses/lrs/times are parallel typed arrays.
  function applySteps(e, d) {
    const n = d.steps.length;
    if (!n) return;
    const have = e.steps.length ? e.steps[e.steps.length - 1] : e.since;
    const first = d.steps[0];
    if (first <= have) {
      // already have these (fetched), or the model was rolled back: then the loss differs
      const i = e.steps.lastIndexOf(first);
      const same = i >= 0 && (e.losses[i] === d.losses[0] || (Number.isNaN(e.losses[i]) && Number.isNaN(d.losses[0])));
      if (!same) { ET.resetEntry(e); ET.refresh(e).catch(() => {}); return; }
    } else if (have >= 0 && first > have + 1 && !e.skippedGap) {
      // a step this page did not see (it was not connected): fetch from what it has
      e.skippedGap = true;   // once per gap: steps skipped by the guard leave gaps too
      ET.refresh(e).then(() => { e.skippedGap = false; }, () => { e.skippedGap = false; });
      return;
    }
    // the points' wall times: each step's own ("times", parallel to "steps", as the
    // history's "time" series has them); from a daemon that sends none, the event's arrival
    // spread over the interval since the previous point
    const own = d.own;
    const t1 = Number.isFinite(d.time) ? d.time : Date.now() / 1000;
    const last = e.times.length ? e.times[e.times.length - 1] : NaN;
    const t0 = Number.isFinite(last) && last < t1 ? last : t1;
    let k = 0, fresh = 0;
    if (!own) for (let i = 0; i < n; i++) if (d.steps[i] > have) fresh++;
    for (let i = 0; i < n; i++) {
      if (!(d.steps[i] > have)) continue;
      e.steps.push(d.steps[i]);
      e.losses.push(d.losses[i]);
      e.lrs.push(d.lrs[i]);
      e.times.push(own ? d.times[i] : t0 + (t1 - t0) * (++k) / fresh);
    }
    ET.trim(e);
    if (e.steps.length) e.since = e.steps[e.steps.length - 1];
    if (typeof d.step === 'number' && d.step > (e.step ?? -1)) e.step = d.step;
    if (typeof d.loss === 'number' || d.loss === null) e.loss = d.loss;
    if (e.info) {
      if (typeof d.lr === 'number') e.info.lr = d.lr;
      e.info.step = e.step;
    }
    if (e.summary) e.summary.step = e.step;
    e.lastMoved = Date.now();
    ET.changed(e);
  }

  function start() {
    // the stream first (so nothing between the first fetch and the stream is lost);
    // without a token yet, or an older daemon, the first poll finds out
    connect();
    if (typeof EventSource !== 'function') state.live = 'polling';
    if (!es) poll(); else setTimeout(() => { if (state.live === 'connecting') poll(); }, 3000);
  }
  function restart() {
    if (es) { es.close(); es = null; }
    state.live = 'polling';
    streamTried = 0;
    poll();
  }
  function intervalChanged() {
    if (state.live === 'stream') return;
    if (state.interval > 0) poll(); else clearTimeout(timer);
  }
  document.addEventListener('visibilitychange', () => { if (!document.hidden && state.live === 'polling') poll(); });

  return { start, restart, apply, intervalChanged, poll, get lastEventId() { return lastEventId; } };
})();
