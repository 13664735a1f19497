// apidocs.js - the /docs page of easytorchd: renders the daemon's own OpenAPI 3.1
// document (openapi.json, served next to this page) as an API reference with a
// "try it" form per operation. Plain browser JavaScript, no dependencies and no
// network access beyond the daemon, so it works offline.
'use strict';

(function () {
  const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];
  let doc = null;

  // el('tag.class', {attr: value}, child, ...): a DOM element; strings become text.
  function el(spec, attrs, ...kids) {
    const [tag, ...classes] = spec.split('.');
    const e = document.createElement(tag || 'div');
    if (classes.length) e.className = classes.join(' ');
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const k of kids.flat(Infinity)) {
      if (k === null || k === undefined || k === false) continue;
      e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return e;
  }

  // ------------------------------------------------------------------ $ref
  function pointer(ref) {
    if (!ref.startsWith('#/')) return undefined;
    let cur = doc;
    for (const raw of ref.slice(2).split('/')) {
      const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
      if (cur === null || typeof cur !== 'object' || !(key in cur)) return undefined;
      cur = cur[key];
    }
    return cur;
  }
  const refName = (ref) => ref.split('/').pop();
  // Follow $ref chains (a response or parameter may be a reference too).
  function deref(x, depth = 0) {
    while (x && x.$ref && depth++ < 32) x = pointer(x.$ref) || {};
    return x || {};
  }

  // ------------------------------------------------------------------ schemas
  // A one-line description of a schema's type and constraints.
  function typeLabel(s) {
    if (!s || typeof s !== 'object') return 'any';
    if (s.$ref) return refName(s.$ref);
    if ('const' in s) return JSON.stringify(s.const);
    if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(' | ');
    let t = Array.isArray(s.type) ? s.type.join(' | ') : s.type;
    if (!t) {
      if (s.oneOf) return 'one of ' + s.oneOf.length;
      if (s.anyOf) return 'any of ' + s.anyOf.length;
      if (s.properties) t = 'object';
      else return 'any';
    }
    if (t === 'array' && s.items) t = typeLabel(s.items) + '[]';
    if (t === 'array' && s.prefixItems) t = '[' + s.prefixItems.map(typeLabel).join(', ') + ']';
    return t;
  }
  function constraints(s) {
    const c = [];
    if (!s || typeof s !== 'object') return c;
    if ('default' in s) c.push('default ' + JSON.stringify(s.default));
    if ('minimum' in s) c.push('>= ' + s.minimum);
    if ('exclusiveMinimum' in s) c.push('> ' + s.exclusiveMinimum);
    if ('maximum' in s) c.push('<= ' + s.maximum);
    if ('exclusiveMaximum' in s) c.push('< ' + s.exclusiveMaximum);
    if ('minItems' in s) c.push('at least ' + s.minItems + ' items');
    if ('maxItems' in s) c.push('at most ' + s.maxItems + ' items');
    if ('maxLength' in s) c.push('at most ' + s.maxLength + ' characters');
    if (s.pattern) c.push('matches ' + s.pattern);
    if (s.contentMediaType) c.push(s.contentMediaType);
    return c;
  }
  function describe(s) {
    const c = constraints(s);
    return [el('span.type', {}, typeLabel(s)), c.length ? ' (' + c.join(', ') + ')' : '',
      s && s.description ? el('span.desc', {}, ' ' + s.description) : ''];
  }

  // The body of a schema: properties, alternatives, items. References are
  // links plus a lazily expanded <details>, so recursive schemas (tensors)
  // never recurse while rendering.
  function schemaView(s, depth = 0) {
    if (!s || typeof s !== 'object') return el('div.schema', {}, 'any value');
    if (s.$ref) {
      return el('div.schema', {}, lazyRef(refName(s.$ref), s, depth));
    }
    const box = el('div.schema');
    if (s.description && depth > 0) box.append(el('div.desc', {}, s.description));
    const alts = s.oneOf || s.anyOf;
    if (alts) {
      box.append(el('div', {}, s.oneOf ? 'one of:' : 'any of:',
        s.discriminator ? el('span.desc', {}, ' (chosen by "' + s.discriminator.propertyName + '")') : ''));
      for (const a of alts) {
        box.append(el('div.alt', {}, '- ', describe(a), (a.$ref || a.properties || a.items) ? schemaView(a, depth + 1) : ''));
      }
    }
    if (s.properties) {
      const req = new Set(s.required || []);
      const rows = Object.entries(s.properties).map(([k, v]) => el('tr', {},
        el('td', {}, el('code', {}, k), req.has(k) ? el('span.req', { title: 'required' }, ' *') : ''),
        el('td', {}, describe(v),
          (v && (v.$ref || v.properties || (v.items && (v.items.$ref || v.items.properties)))) ? schemaView(v.items && !v.$ref && !v.properties ? v.items : v, depth + 1) : '')));
      box.append(el('table', {}, rows));
      if (s.additionalProperties === false) box.append(el('div.desc', {}, 'no other fields'));
    } else if (s.additionalProperties && typeof s.additionalProperties === 'object') {
      box.append(el('div', {}, 'any keys, each: ', describe(s.additionalProperties), schemaView(s.additionalProperties, depth + 1)));
    }
    if (s.items && !s.properties && !alts) box.append(el('div', {}, 'items: ', describe(s.items), (s.items.$ref || s.items.properties) ? schemaView(s.items, depth + 1) : ''));
    return box;
  }

  // A small example value for a schema (used when the document gives none).
  function sample(s, depth = 0) {
    s = deref(s);
    if (depth > 6) return null;
    if ('example' in s) return s.example;
    if ('const' in s) return s.const;
    if ('default' in s) return s.default;
    if (s.enum) return s.enum[0];
    if (s.oneOf || s.anyOf) return sample((s.oneOf || s.anyOf)[0], depth + 1);
    const t = Array.isArray(s.type) ? s.type.find((x) => x !== 'null') : s.type;
    if (t === 'object' || s.properties) {
      const o = {};
      for (const k of s.required || []) o[k] = sample(s.properties && s.properties[k], depth + 1);
      return o;
    }
    if (t === 'array') return s.items ? [sample(s.items, depth + 1)] : [];
    if (t === 'integer') return s.minimum !== undefined ? s.minimum : 1;
    if (t === 'number') return 0.5;
    if (t === 'boolean') return false;
    if (t === 'string') return '';
    return 0;
  }

  // ------------------------------------------------------------------ operations
  function paramsTable(params) {
    return el('table', {}, el('tr', {}, el('th', {}, 'name'), el('th', {}, 'in'), el('th', {}, 'schema')),
      params.map((p) => el('tr', {},
        el('td', {}, el('code', {}, p.name), p.required ? el('span.req', { title: 'required' }, ' *') : ''),
        el('td', {}, p.in),
        el('td', {}, describe(p.schema), p.description ? el('div.desc', {}, p.description) : ''))));
  }

  // A reference as a <details> whose body is rendered when first opened.
  function lazyRef(label, s, depth) {
    const d = el('details', {}, el('summary', {}, label));
    let filled = false;
    d.addEventListener('toggle', () => {
      if (!filled && d.open) { filled = true; d.append(schemaView(deref(s), depth + 1)); }
    });
    return d;
  }

  function contentView(content) {
    return Object.entries(content || {}).map(([media, m]) => {
      const s = m.schema;
      let body;
      if (s && s.$ref) body = lazyRef([el('span.media', {}, media), ' ', el('span.type', {}, refName(s.$ref))], s, 0);
      else body = el('div', {}, el('span.media', {}, media), s ? [' ', describe(s), (s.properties || s.oneOf || s.anyOf || s.items) ? schemaView(s, 1) : ''] : '');
      return el('div', {}, body,
        m.example !== undefined ? el('details', {}, el('summary', {}, 'example'),
          el('pre.result', {}, JSON.stringify(m.example, null, 2))) : '');
    });
  }

  function responsesView(responses) {
    return el('table', {}, Object.entries(responses || {}).map(([code, r0]) => {
      const r = deref(r0);
      const cls = 's' + String(code)[0];
      return el('tr', {}, el('td', {}, el('span.status.' + cls, {}, code)),
        el('td', {}, el('div', {}, r.description || ''),
          r.headers ? el('div.desc', {}, 'headers: ' + Object.keys(r.headers).join(', ')) : '',
          r.content ? contentView(r.content) : ''));
    }));
  }

  function tryView(path, method, o, params) {
    const box = el('div.try.hidden');
    const inputs = {};
    for (const p of params) {
      if (p.in !== 'path' && p.in !== 'query') continue;
      inputs[p.name] = el('input', { type: 'text', placeholder: p.required ? 'required' : 'optional' });
      box.append(el('label', {}, p.name + ' (' + p.in + ') ', inputs[p.name]));
    }
    let bodyArea = null, mediaSel = null, fileIn = null;
    const rb = o.requestBody && deref(o.requestBody);
    if (rb && rb.content) {
      const medias = Object.keys(rb.content);
      mediaSel = el('select', {}, medias.map((m) => el('option', { value: m }, m)));
      const first = rb.content[medias[0]];
      const ex = first.example !== undefined ? first.example : sample(first.schema || {});
      bodyArea = el('textarea', { spellcheck: 'false' }, JSON.stringify(ex, null, 2));
      fileIn = el('input.hidden', { type: 'file' });
      mediaSel.addEventListener('change', () => {
        const json = mediaSel.value.includes('json');
        bodyArea.classList.toggle('hidden', !json);
        fileIn.classList.toggle('hidden', json);
      });
      box.append(el('label', {}, 'body ', mediaSel), bodyArea, fileIn);
    }
    const out = el('pre.result.answer.hidden');
    const send = el('button', {
      type: 'button',
      onclick: async () => {
        let url = path.replace(/\{([^}]+)\}/g, (_, n) => encodeURIComponent(inputs[n] ? inputs[n].value : ''));
        const q = params.filter((p) => p.in === 'query' && inputs[p.name].value !== '')
          .map((p) => encodeURIComponent(p.name) + '=' + encodeURIComponent(inputs[p.name].value));
        if (q.length) url += '?' + q.join('&');
        const headers = {};
        const tok = document.getElementById('token').value;
        if (tok) headers.Authorization = 'Bearer ' + tok;
        let body;
        if (bodyArea) {
          headers['Content-Type'] = mediaSel.value;
          if (mediaSel.value.includes('json')) body = bodyArea.value;
          else if (fileIn.files[0]) body = fileIn.files[0];
        }
        out.classList.remove('hidden');
        out.textContent = method.toUpperCase() + ' ' + url + ' ...';
        try {
          const t0 = performance.now();
          const r = await fetch(url.replace(/^\//, ''), { method: method.toUpperCase(), headers, body });
          const ms = (performance.now() - t0).toFixed(1);
          const ct = r.headers.get('Content-Type') || '';
          let text;
          if (ct.includes('json')) {
            const raw = await r.text();
            try { text = JSON.stringify(JSON.parse(raw), null, 2); } catch (e) { text = raw; }
          } else if (ct.startsWith('text/')) {
            text = await r.text();
          } else {
            const b = await r.blob();
            text = b.size + ' bytes of ' + (ct || 'data');
            const a = el('a', { href: URL.createObjectURL(b), download: 'response.bin' }, ' download');
            out.textContent = r.status + ' ' + r.statusText + '  (' + ms + ' ms)\n' + text;
            out.append(a);
            return;
          }
          out.textContent = r.status + ' ' + r.statusText + '  (' + ms + ' ms)\n' + text;
        } catch (e) {
          out.textContent = 'request failed: ' + e;
        }
      },
    }, 'Send');
    box.append(send, out);
    return box;
  }

  function operationView(path, method, o, pathParams) {
    const params = [...(pathParams || []), ...(o.parameters || [])].map((p) => deref(p));
    const id = o.operationId || method + path;
    const tryBox = tryView(path, method, o, params);
    const sec = el('section.op', { id: 'op-' + id, 'data-op': id, 'data-search': (method + ' ' + path + ' ' + (o.summary || '') + ' ' + id).toLowerCase() },
      el('h3', {}, el('span.method.m-' + method, {}, method.toUpperCase()), el('code', {}, path),
        el('span.summary', {}, o.summary || ''), el('span.opid', {}, id)),
      o.description ? el('p.desc', {}, o.description) : '',
      (o.security && o.security.length === 0) ? el('p.desc', {}, 'No token needed.') : '',
      params.length ? [el('h5', {}, 'Parameters'), paramsTable(params)] : '',
      o.requestBody ? [el('h5', {}, 'Request body' + (deref(o.requestBody).required ? '' : ' (optional)')),
        deref(o.requestBody).description ? el('p.desc', {}, deref(o.requestBody).description) : '',
        contentView(deref(o.requestBody).content)] : '',
      el('h5', {}, 'Responses'), responsesView(o.responses),
      el('button', { type: 'button', onclick: () => tryBox.classList.toggle('hidden') }, 'Try it'), tryBox);
    return sec;
  }

  function render() {
    document.title = (doc.info && doc.info.title ? doc.info.title : 'API') + ' reference';
    document.getElementById('title').textContent = (doc.info && doc.info.title) || 'API reference';
    document.getElementById('version').textContent = doc.info ? 'v' + doc.info.version + ' - OpenAPI ' + doc.openapi : '';
    const main = document.getElementById('main');
    const nav = document.getElementById('nav');
    main.textContent = '';
    nav.textContent = '';
    if (doc.info && doc.info.description) main.append(el('div.intro', {}, el('p', {}, doc.info.description)));
    // operations grouped by their first tag, in the order of the document's tags
    const groups = new Map((doc.tags || []).map((t) => [t.name, { tag: t, ops: [] }]));
    for (const [path, item] of Object.entries(doc.paths || {})) {
      for (const m of METHODS) {
        if (!item[m]) continue;
        const tag = (item[m].tags && item[m].tags[0]) || 'other';
        if (!groups.has(tag)) groups.set(tag, { tag: { name: tag }, ops: [] });
        groups.get(tag).ops.push([path, m, item[m], item.parameters]);
      }
    }
    for (const { tag, ops } of groups.values()) {
      if (!ops.length) continue;
      main.append(el('h2', { id: 'tag-' + tag.name }, tag.name), tag.description ? el('p.desc', {}, tag.description) : '');
      nav.append(el('h4', {}, tag.name));
      for (const [path, m, o, pp] of ops) {
        main.append(operationView(path, m, o, pp));
        const id = o.operationId || m + path;
        nav.append(el('a', { href: '#op-' + id, 'data-nav': id }, el('span.method.m-' + m, {}, m.toUpperCase()), ' ', path));
      }
    }
    const schemas = (doc.components && doc.components.schemas) || {};
    if (Object.keys(schemas).length) {
      main.append(el('h2', { id: 'schemas' }, 'Schemas'));
      nav.append(el('h4', {}, 'schemas'), el('a', { href: '#schemas' }, Object.keys(schemas).length + ' schemas'));
      for (const [name, s] of Object.entries(schemas)) {
        main.append(el('section.op', { id: 'schema-' + name }, el('h3', {}, el('code', {}, name), el('span.summary', {}, typeLabel(s))),
          s.description ? el('p.desc', {}, s.description) : '', schemaView(s, 1)));
      }
    }
    if (location.hash) { const t = document.getElementById(location.hash.slice(1)); if (t) t.scrollIntoView(); }
  }

  function applyFilter() {
    const q = document.getElementById('filter').value.trim().toLowerCase();
    for (const sec of document.querySelectorAll('section.op[data-op]')) {
      const show = !q || sec.dataset.search.includes(q);
      sec.classList.toggle('hidden', !show);
      const a = document.querySelector('nav a[data-nav="' + CSS.escape(sec.dataset.op) + '"]');
      if (a) a.classList.toggle('hidden', !show);
    }
  }

  async function start() {
    const tok = document.getElementById('token');
    try { tok.value = sessionStorage.getItem('easytorch-token') || ''; } catch (e) { /* storage off */ }
    tok.addEventListener('change', () => { try { sessionStorage.setItem('easytorch-token', tok.value); } catch (e) { /* storage off */ } });
    document.getElementById('filter').addEventListener('input', applyFilter);
    const status = document.getElementById('status');
    try {
      const r = await fetch('openapi.json');
      if (!r.ok) throw new Error('HTTP ' + r.status);
      doc = await r.json();
    } catch (e) {
      status.className = 'error';
      status.textContent = 'could not load openapi.json: ' + e.message;
      return;
    }
    render();
    document.body.dataset.rendered = 'true';
  }

  start();
})();
