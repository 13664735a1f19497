// easytorch dashboard: the versions of a model, on its page (issue 18's API): which one
// plain predict serves, freeze the live state (with a label, optionally serving it), serve
// a version or the live model, roll back to a version and delete one (each behind a
// confirmation), fork a version into a new model, download a version as ONNX.
'use strict';

ET.versions = (function () {
  const { state, api, request, modelPath, fmtNum } = ET;
  const $ = (id) => document.getElementById(id);
  const V = {
    body: document.querySelector('#versions-table tbody'), table: $('versions-table'), empty: $('versions-empty'),
    serving: $('serving-now'), serveLive: $('serve-live'), form: $('freeze-form'), label: $('freeze-label'),
    serve: $('freeze-serve'), result: $('versions-result'),
    dialog: $('confirm'), dTitle: $('confirm-title'), dText: $('confirm-text'), dOk: $('confirm-ok'),
    dField: $('confirm-field'), dInput: $('confirm-input'), dInputLabel: $('confirm-input-label'),
    name: null, list: [], count: null, loading: false,
  };

  function say(text, kind) {
    V.result.textContent = text;
    V.result.dataset.state = kind || 'ok';
  }

  // An accessible confirmation (a modal <dialog>, focus inside, Escape cancels); resolves to
  // the input's value (or true) when confirmed, null when not.
  function confirmDialog({ title, text, ok, input }) {
    return new Promise((resolve) => {
      V.dTitle.textContent = title;
      V.dText.textContent = text;
      V.dOk.textContent = ok;
      V.dField.hidden = !input;
      if (input) { V.dInputLabel.textContent = input.label; V.dInput.value = input.value || ''; }
      V.dialog.returnValue = '';
      const done = () => {
        V.dialog.removeEventListener('close', done);
        if (V.dialog.returnValue !== 'ok') return resolve(null);
        resolve(input ? V.dInput.value.trim() : true);
      };
      V.dialog.addEventListener('close', done);
      V.dialog.showModal();
      (input ? V.dInput : V.dOk).focus();
    });
  }

  async function load() {
    const name = V.name;
    if (!name || V.loading) return;
    V.loading = true;
    try {
      const r = await api(modelPath(name) + '/versions');
      if (V.name !== name) return;
      V.list = r.versions || [];
      V.servingNow = r.serving;
      V.count = V.list.length;
      render();
    } catch (err) {
      if (err.status !== 404) say('versions: ' + err.message, 'error');
    } finally {
      V.loading = false;
    }
  }

  function fmtTime(sec) {
    return typeof sec === 'number' ? new Date(sec * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC') : String(sec);
  }
  function fmtSize(b) {
    return typeof b !== 'number' ? '–' : b < 1024 ? b + ' B' : b < 1048576 ? (b / 1024).toFixed(1) + ' KiB' : (b / 1048576).toFixed(1) + ' MiB';
  }
  function valText(v) {
    const m = v.validation && (v.validation.metrics || v.validation);
    if (!m || typeof m !== 'object') return '';
    return Object.entries(m).filter(([, x]) => typeof x === 'number').map(([k, x]) => k + ' ' + fmtNum(x, 4)).join(', ');
  }

  function button(text, label, onClick, cls) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = text;
    b.className = cls || 'secondary';
    b.setAttribute('aria-label', label);
    b.addEventListener('click', async () => {
      b.disabled = true;
      try { await onClick(); } finally { b.disabled = false; }
    });
    return b;
  }

  function render() {
    const serving = V.servingNow;
    V.serving.textContent = serving === 'live' || serving === undefined ? 'the live model' : 'version ' + serving;
    V.serving.dataset.serving = String(serving ?? 'live');
    V.serveLive.hidden = serving === 'live' || serving === undefined;
    V.empty.hidden = V.list.length > 0;
    V.table.hidden = V.list.length === 0;
    V.body.textContent = '';
    for (const v of V.list.slice().reverse()) {
      const tr = document.createElement('tr');
      tr.dataset.version = String(v.version);
      tr.dataset.serving = v.serving ? '1' : '0';
      const val = valText(v);
      const cells = [String(v.version) + (v.serving ? ' (serving)' : ''), v.label ?? '', v.step.toLocaleString('en-US'),
        fmtNum(v.loss, 4) + (val ? ' · validation ' + val : ''), fmtTime(v.created), fmtSize(v.size)];
      for (const c of cells) { const td = document.createElement('td'); td.textContent = c; tr.appendChild(td); }
      const td = document.createElement('td');
      td.className = 'actions';
      const n = v.version;
      const serve = button('Serve', 'Serve version ' + n, () => act('PATCH', '', { serving: n }, 'version ' + n + ' is serving'));
      serve.hidden = !!v.serving;
      serve.dataset.action = 'serve';
      const rb = button('Roll back…', 'Roll back to version ' + n, () => rollback(v));
      rb.dataset.action = 'rollback';
      const fork = button('Fork…', 'Fork version ' + n + ' into a new model', () => forkVersion(v));
      fork.dataset.action = 'fork';
      const onnx = button('ONNX', 'Download version ' + n + ' as ONNX', () => exportOnnx(n));
      onnx.dataset.action = 'onnx';
      const del = button('Delete…', 'Delete version ' + n, () => remove(v));
      del.dataset.action = 'delete';
      td.append(serve, rb, fork, onnx, del);
      tr.appendChild(td);
      V.body.appendChild(tr);
    }
    // the freezes as markers on the charts
    const ms = ET.model.extraMarkers;
    ms.length = 0;
    for (const v of V.list) ms.push({ kind: 'version', step: v.step, version: v.version, label: v.label, time: v.created });
    ET.model.paint();
  }

  async function act(method, suffix, body, okText) {
    const name = V.name;
    try {
      await api(modelPath(name) + suffix, method, body);
      say(okText);
    } catch (err) {
      say(err.message, 'error');
    }
    await load();
    const e = state.models.get(name);
    if (e) ET.refresh(e).catch(() => {});
  }

  async function rollback(v) {
    const e = state.models.get(V.name);
    const now = e && e.step !== null ? e.step : null;
    const ok = await confirmDialog({ title: 'Roll back ' + V.name + ' to version ' + v.version + '?',
      text: 'The live model goes back to step ' + v.step + (now !== null ? ' (it is at step ' + now + ')' : '') +
        ': its parameters, buffers, optimizer and scheduler state and loss history; what it learned since and its ' +
        'pending batches are discarded.', ok: 'Roll back' });
    if (!ok) { say('rollback cancelled'); return; }
    try {
      const r = await api(modelPath(V.name) + '/rollback', 'POST', { version: v.version });
      say('rolled back to version ' + r.version + ': step ' + r.from_step + ' → ' + r.step + ' (restored ' + (r.restored || []).join(', ') + ')');
      if (e) { ET.resetEntry(e); ET.refresh(e).catch(() => {}); }
    } catch (err) {
      say(err.message, 'error');
    }
  }

  async function forkVersion(v) {
    const to = await confirmDialog({ title: 'Fork version ' + v.version + ' of ' + V.name,
      text: 'A new model starts from this version: its spec and whole state (step ' + v.step + ').',
      ok: 'Fork', input: { label: 'Name of the new model', value: V.name + '-v' + v.version } });
    if (!to) { say('fork cancelled'); return; }
    try {
      await api('v1/models', 'POST', { name: to, from: { model: V.name, version: v.version } });
      V.result.textContent = '';
      V.result.dataset.state = 'ok';
      const a = document.createElement('a');
      a.href = '#model=' + encodeURIComponent(to);
      a.textContent = to;
      V.result.append('forked version ' + v.version + ' as ', a);
      ET.refresh(ET.ensureEntry(to)).catch(() => {});
    } catch (err) {
      say(err.message, 'error');
    }
  }

  async function remove(v) {
    const ok = await confirmDialog({ title: 'Delete version ' + v.version + ' of ' + V.name + '?',
      text: 'Its file is removed; the number is not reused.', ok: 'Delete' });
    if (!ok) { say('delete cancelled'); return; }
    await act('DELETE', '/versions/' + v.version, undefined, 'version ' + v.version + ' deleted');
  }

  // The file comes from the daemon with the token (an <a href> could not send it), then is
  // handed to the browser as a blob: nothing goes to another host.
  async function exportOnnx(n) {
    const name = V.name;
    const res = await request(modelPath(name) + '/versions/' + n + '/export?format=onnx');
    if (!res.ok) {
      let msg = res.statusText;
      try { msg = (await res.json()).error || msg; } catch (e) { /* not JSON */ }
      say('ONNX export: ' + msg, 'error');
      return;
    }
    const blob = await res.blob();
    ET.model.download(name + '-v' + n + '.onnx', 'application/onnx', blob);
    say('version ' + n + ' exported as ONNX (' + fmtSize(blob.size) + ')');
  }

  V.form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = {};
    if (V.label.value.trim()) body.label = V.label.value.trim();
    if (V.serve.checked) body.serve = true;
    try {
      const r = await api(modelPath(V.name) + '/versions', 'POST', body);
      say('version ' + r.version + ' frozen at step ' + r.step + (r.serving ? ', serving' : '') +
        (r.removed && r.removed.length ? ' (retention removed ' + r.removed.join(', ') + ')' : ''));
      V.label.value = '';
      V.serve.checked = false;
    } catch (err) {
      say(err.message, 'error');
    }
    await load();
    const e = state.models.get(V.name);
    if (e) ET.refresh(e).catch(() => {});
  });
  V.serveLive.addEventListener('click', () => act('PATCH', '', { serving: 'live' }, 'the live model is serving'));

  function open(name) {
    V.name = name;
    V.list = []; V.count = null; V.servingNow = undefined;
    V.result.textContent = '';
    V.body.textContent = '';
    if (name) load();
  }
  // another client froze or deleted a version: the model's description counts them
  ET.painters.push(() => {
    const e = V.name && state.models.get(V.name);
    if (!e || !e.info || V.loading || V.infoSeen === e.info) return;
    V.infoSeen = e.info;   // once per description fetched (not per frame)
    if ((typeof e.info.versions === 'number' && V.count !== null && e.info.versions !== V.count) ||
        (e.info.serving !== undefined && V.servingNow !== undefined && e.info.serving !== V.servingNow)) load();
  });

  const label = (n) => { const v = V.list.find((x) => x.version === n); return v ? v.label : null; };
  return { open, load, label };
})();
