// The API reference page (/docs) and CORS in a real browser against real easytorchd daemons.
//
//   node test_apidocs.mjs --easytorchd PATH [--out DIR]
//
// 1. /docs on a daemon with a token: every operation of /openapi.json is on the page (by its
//    operationId) with its method and path, every schema has its section, nothing is loaded
//    from anywhere but the daemon, no script error; the filter hides what does not match;
//    "Try it" on GET /v1/models with the token sends the request and shows the answer, and
//    POST /v1/models/{name}/predict with its example body answers 404 for a model that does
//    not exist (the page shows the error). Screenshots into DIR.
// 2. CORS: a page served by daemon A (its /docs) calls daemon B from the browser with an
//    Authorization header (so the browser sends a preflight): B started with
//    --cors-origin <A's origin> answers and the script reads the JSON; B without the flag
//    (or allowing another origin) is blocked by the browser.
// Uses Debian's /usr/bin/chromium through playwright-core (`npm ci` in tests/clients; run
// when node_modules is missing). Ends with `N passed, M failed`.
import { fileURLToPath } from 'node:url';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import * as B from './browser.mjs';

const { OUT, check, finish } = B;
const TOKEN = 'apidocs-test-token-7';

const daemons = [];
async function startDaemon(extra = [], token = null) {
  const d = await B.startDaemon(extra, token);
  daemons.push(d);
  return d;
}
const ready = B.ready;
async function stopAll() {
  for (const d of daemons) await B.stopDaemon(d);
}

async function main() {
  const chromium = await B.loadChromium(path.dirname(fileURLToPath(import.meta.url)));
  if (!chromium) return finish();
  mkdirSync(OUT, { recursive: true });

  // ---------------------------------------------------------------- 1. the reference page
  const A = await startDaemon([], TOKEN);
  await ready(A);
  const doc = await (await fetch(A.url + '/openapi.json')).json();
  const browser = await B.launch(chromium);
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const origin = new URL(A.url).origin;
    const foreign = [], errors = [];
    page.on('request', (r) => { const u = r.url(); if (!u.startsWith(origin + '/') && !u.startsWith('blob:') && !u.startsWith('data:')) foreign.push(u); });
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(A.url + '/docs');
    await page.waitForSelector('body[data-rendered="true"]', { timeout: 30000 });
    const ops = [];
    for (const [p, item] of Object.entries(doc.paths)) {
      for (const m of ['get', 'put', 'post', 'delete', 'patch']) if (item[m]) ops.push([m, p, item[m].operationId]);
    }
    const shown = await page.$$eval('section.op[data-op]', (els) => els.map((e) => [e.dataset.op, e.querySelector('h3 .method').textContent, e.querySelector('h3 code').textContent]));
    const byId = new Map(shown.map(([id, m, p]) => [id, [m, p]]));
    const missing = ops.filter(([m, p, id]) => !byId.has(id) || byId.get(id)[0] !== m.toUpperCase() || byId.get(id)[1] !== p);
    check(`every operation of /openapi.json is on the page (${ops.length})`, missing.length === 0 && shown.length === ops.length,
      missing.map((x) => x.join(' ')).join('; '));
    const nschemas = Object.keys(doc.components.schemas).length;
    const schemaSections = await page.$$eval('section.op[id^="schema-"]', (els) => els.length);
    check(`every schema has its section (${nschemas})`, schemaSections === nschemas, `${schemaSections}`);
    const title = await page.textContent('#title');
    check('the page shows the document title and version', title === doc.info.title &&
      (await page.textContent('#version')).includes(doc.info.version));
    // responses of an operation list every documented status
    const statuses = await page.$$eval('#op-defineModel .status', (els) => els.map((e) => e.textContent));
    check('an operation lists its documented statuses', JSON.stringify(statuses) === JSON.stringify(Object.keys(doc.paths['/v1/models'].post.responses)),
      statuses.join(','));
    // a schema expands when opened (lazy $ref rendering)
    await page.click('#op-defineModel details summary');
    const expanded = await page.$eval('#op-defineModel details', (d) => d.textContent);
    check('a $ref schema expands into its fields', /layers/.test(expanded) && /optimizer/.test(expanded), expanded.slice(0, 80));
    await page.screenshot({ path: path.join(OUT, 'apidocs-wide.png'), fullPage: false });
    // the filter
    await page.fill('#filter', 'infer');
    const visible = await page.$$eval('section.op[data-op]', (els) => els.filter((e) => !e.classList.contains('hidden')).map((e) => e.dataset.op));
    check('the filter keeps only what matches', visible.length >= 2 && visible.every((id) => /infer/i.test(id)), visible.join(','));
    await page.fill('#filter', '');
    // try it: the token field, GET /v1/models
    await page.fill('#token', TOKEN);
    await page.dispatchEvent('#token', 'change');
    await page.click('#op-listModels > button');
    await page.click('#op-listModels .try button[type=button]');
    await page.waitForFunction(() => /^200 /.test(document.querySelector('#op-listModels .try .answer').textContent), null, { timeout: 20000 });
    const out = await page.textContent('#op-listModels .try .answer');
    check('Try it sends the request with the token and shows the answer', /"models"/.test(out), out.slice(0, 80));
    // try it with a path parameter and the example body: 404 for an unknown model, shown
    await page.click('#op-predict > button');
    await page.fill('#op-predict .try input[type=text]', 'no-such-model');
    await page.click('#op-predict .try button[type=button]');
    await page.waitForFunction(() => /^404 /.test(document.querySelector('#op-predict .try .answer').textContent), null, { timeout: 20000 }).catch(async (e) => { console.log('result:', await page.textContent('#op-predict .try .answer')); throw e; });
    check('Try it shows an error answer', /no model named/.test(await page.textContent('#op-predict .try .answer')));
    await page.screenshot({ path: path.join(OUT, 'apidocs-try.png'), fullPage: false });
    check('nothing is loaded from elsewhere (no CDN)', foreign.length === 0, foreign.slice(0, 3).join(' '));
    check('no script errors', errors.length === 0, errors.join('; '));
    await context.close();

    // ---------------------------------------------------------------- 2. CORS from a browser
    const spec = { name: 'c', layers: [{ type: 'Linear', in_features: 2, out_features: 1 }], loss: 'MSELoss', optimizer: { type: 'SGD', lr: 0.1 }, seed: 1 };
    const allowed = await startDaemon(['--cors-origin', origin], TOKEN);
    const other = await startDaemon(['--cors-origin', 'http://elsewhere.example'], TOKEN);
    const plain = await startDaemon([], TOKEN);
    for (const d of [allowed, other, plain]) {
      await ready(d);
      await fetch(d.url + '/v1/models', { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' }, body: JSON.stringify(spec) });
    }
    const ctx = await browser.newContext();
    const p2 = await ctx.newPage();
    await p2.goto(A.url + '/docs');   // the page's origin is A's
    const call = (url) => p2.evaluate(async ([u, tok]) => {
      try {
        const r = await fetch(u + '/v1/models/c/predict', {
          method: 'POST', headers: { Authorization: 'Bearer ' + tok, 'Content-Type': 'application/json' },
          body: JSON.stringify({ inputs: [[1, 2]] }),
        });
        return { status: r.status, body: await r.json() };
      } catch (e) {
        return { blocked: String(e) };
      }
    }, [url, TOKEN]);
    const ok = await call(allowed.url);
    check('a page on another origin calls a daemon started with --cors-origin <its origin>',
      ok.status === 200 && Array.isArray(ok.body.outputs), JSON.stringify(ok));
    const err = await p2.evaluate(async (u) => {
      const r = await fetch(u + '/v1/models/nope', { headers: { Authorization: 'Bearer wrong' } });
      return { status: r.status, body: await r.json() };
    }, allowed.url);
    check('the script reads error answers too (401 with its message)', err.status === 401 && /token/.test(err.body.error), JSON.stringify(err));
    const no1 = await call(other.url);
    check('a daemon allowing another origin is blocked by the browser', !!no1.blocked, JSON.stringify(no1));
    const no2 = await call(plain.url);
    check('a daemon without --cors-origin is blocked by the browser', !!no2.blocked, JSON.stringify(no2));
    await ctx.close();
  } finally {
    await browser.close();
  }
}

main().then(async () => { await stopAll(); finish(); })
  .catch(async (e) => { check('the test ran', false, e.stack || String(e)); await stopAll(); finish(); });
