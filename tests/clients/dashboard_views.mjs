// dashboard_views.mjs - what test_dashboard.mjs checks of how the page reads rather than
// what it shows: accessible names (Chromium's own accessibility tree, as axe's "every
// control has a name" rule), the keyboard path through the controls, text contrast (WCAG),
// horizontal overflow, the size of a saved screenshot; the dark theme and a 4K screen; that
// only the cards in the viewport are drawn.
import { openSync, readSync, closeSync } from 'node:fs';
import path from 'node:path';

// Roles a user operates or reads as one thing: each needs a name (WCAG 4.1.2, 1.1.1).
const NAMED_ROLES = new Set(['button', 'checkbox', 'combobox', 'slider', 'textbox', 'spinbutton', 'link',
  'radio', 'switch', 'menuitem', 'tab', 'searchbox', 'listbox', 'img', 'image', 'progressbar', 'dialog']);

// The controls (and images) on the page without an accessible name, as Chromium computes
// it (labels, aria-label/labelledby, content, title), with the total seen: {count, unnamed: [...]}.
export async function unnamedControls(page) {
  const cdp = await page.context().newCDPSession(page);
  try {
    await cdp.send('Accessibility.enable');
    const { nodes } = await cdp.send('Accessibility.getFullAXTree');
    const unnamed = [];
    let count = 0;
    for (const n of nodes) {
      const role = n.role && n.role.value;
      if (n.ignored || !NAMED_ROLES.has(role)) continue;
      count++;
      const name = ((n.name && n.name.value) || '').trim();
      if (!name) {
        let what = role;
        if (n.backendDOMNodeId) {
          const { object } = await cdp.send('DOM.resolveNode', { backendNodeId: n.backendDOMNodeId });
          const r = await cdp.send('Runtime.callFunctionOn', { objectId: object.objectId, returnByValue: true,
            functionDeclaration: 'function () { return this.outerHTML.slice(0, 120); }' });
          what += ' ' + r.result.value;
        }
        unnamed.push(what);
      }
    }
    return { count, unnamed };
  } finally {
    await cdp.detach().catch(() => {});
  }
}

// Presses Tab `presses` times from the top of the page and returns what got the focus,
// in order: a selector-like description of each element (id, else tag.class[data-model]).
export async function tabPath(page, presses) {
  // (the body focused for a moment: sequential navigation then starts at the top)
  await page.evaluate(() => {
    window.scrollTo(0, 0);
    document.body.tabIndex = -1;
    document.body.focus();
    document.body.removeAttribute('tabindex');
  });
  const seen = [];
  for (let i = 0; i < presses; i++) {
    await page.keyboard.press('Tab');
    seen.push(await page.evaluate(() => {
      const el = document.activeElement;
      if (!el || el === document.body) return 'body';
      if (el.id) return '#' + el.id;
      const card = el.closest('[data-model]');
      return el.tagName.toLowerCase() + (el.className ? '.' + String(el.className).split(' ')[0] : '') +
        (card ? '@' + card.dataset.model : '');
    }));
  }
  return seen;
}

// WCAG 2 contrast ratio of an element's text colour against the background it sits on
// (the first ancestor with an opaque background colour).
export function contrastOf(page, selector) {
  return page.$eval(selector, (el) => {
    const rgb = (s) => (s.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
      const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const fg = rgb(getComputedStyle(el).color);
    let bgEl = el, bg = null;
    while (bgEl) {
      const c = rgb(getComputedStyle(bgEl).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.99)) { bg = c.slice(0, 3); break; }
      bgEl = bgEl.parentElement;
    }
    if (!bg) bg = [255, 255, 255];
    const a = lum(fg), b = lum(bg);
    return { ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05), fg: fg.slice(0, 3), bg, bgLum: b };
  });
}

// How far the page is wider than its viewport, in CSS pixels (0: it fits).
export function overflowX(page) {
  return page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
}

// A PNG's width and height (its IHDR chunk).
export function pngSize(file) {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(24);
    readSync(fd, b, 0, 24, 0);
    if (b.toString('latin1', 12, 16) !== 'IHDR') return null;
    return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
  } finally {
    closeSync(fd);
  }
}

// The page in the system's dark theme (prefers-color-scheme, emulated) and on a 4K screen:
// it draws, reads (WCAG AA contrast), fits the width, draws its charts in the theme's colours
// and at their boxes' widths; screenshots of each.  Then a control: the checks for requests
// to other hosts and for script errors do catch them.  t: {browser, url, token, card, page
// (the test's page, light theme), watch(page, label, sink), out, check, waitFor}.
export async function themesAndScreens(t) {
  const { browser, url, token, card, page, watch, out, check, waitFor } = t;
  const lightText = await contrastOf(page, `${card} .stats dd`);
  const lightMuted = await contrastOf(page, `${card} .caption`);
  for (const [label, opts, shot] of [
    ['dark theme', { viewport: { width: 1400, height: 900 }, colorScheme: 'dark' }, 'dashboard-dark-1400x900.png'],
    ['4K screen', { viewport: { width: 3840, height: 2160 } }, 'dashboard-3840x2160.png']]) {
    const ctx = await browser.newContext(opts);
    await ctx.addInitScript((t) => localStorage.setItem('easytorch.token', t), token);
    const vp = await ctx.newPage();
    watch(vp, ` (${label})`);
    await vp.goto(url + '/');
    const drawn = await waitFor(async () => !!(await vp.$(`${card} .plot[data-series]`)) &&
      await vp.evaluate(() => ET.idle()), 30000);
    check(`${label}: the page draws the models`, !!drawn && (await vp.$$('#models article')).length === 3,
      `${(await vp.$$('#models article')).length} cards; status: ${await vp.textContent('#status')}`);
    if (!drawn) { await ctx.close(); continue; }
    const text = await contrastOf(vp, `${card} .stats dd`), muted = await contrastOf(vp, `${card} .caption`);
    check(`${label}: text and muted text are readable (contrast at least 4.5:1, WCAG AA)`, text.ratio >= 4.5 && muted.ratio >= 4.5,
      `text ${text.ratio.toFixed(1)}:1 on rgb(${text.bg}), muted ${muted.ratio.toFixed(1)}:1`);
    const ov = await overflowX(vp);
    check(`${label}: no horizontal overflow`, ov <= 0, `overflow ${ov}px`);
    if (opts.colorScheme === 'dark') {
      check('dark theme: the page follows prefers-color-scheme (a dark background)', text.bgLum < 0.05 &&
        (await contrastOf(page, `${card} .stats dd`)).bgLum > 0.8, `background rgb(${text.bg}) vs light rgb(${lightText.bg})`);
      // the charts are drawn in the theme's colours: the dark grid's colour, none of the light one's
      const grid = await vp.evaluate((sel) => {
        const c = document.querySelector(sel), px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let dark = 0, light = 0;
        for (let i = 0; i < px.length; i += 4) {
          if (px[i + 3] !== 255) continue;
          if (px[i] === 0x2c && px[i + 1] === 0x33 && px[i + 2] === 0x40) dark++;
          if (px[i] === 0xe3 && px[i + 1] === 0xe6 && px[i + 2] === 0xec) light++;
        }
        return { dark, light };
      }, `${card} .plot canvas`);
      check('dark theme: the chart\'s grid is drawn in the dark theme\'s colour', grid.dark > 200 && grid.light === 0, JSON.stringify(grid));
    } else {
      // on a wide screen the cards share the width, and each chart is as wide as its card's box;
      // the page draws its charts over several frames, so first wait until all three exist
      await waitFor(async () => await vp.$$eval('#models article .plot',
        (ps) => ps.length === 3 && ps.every((p) => p.querySelector('canvas'))) &&
        await vp.evaluate(() => ET.idle()), 30000);
      const fit = await vp.$$eval('#models article .plot', (ps) => ps.map((p) => {
        const c = p.querySelector('canvas');
        return { box: p.clientWidth, chart: c ? c.getBoundingClientRect().width : 0 };
      }));
      const font = await vp.evaluate(() => parseFloat(getComputedStyle(document.body).fontSize));
      check('4K screen: larger text, and every chart fills its card', font >= 18 && fit.length === 3 &&
        fit.every((f) => f.box > 400 && Math.abs(f.chart - f.box) <= 3), `font ${font}px, ${JSON.stringify(fit)}`);
    }
    await vp.screenshot({ path: path.join(out, shot) });
    const size = pngSize(path.join(out, shot));
    check(`${label}: the screenshot is saved at the viewport's size`, !!size && size.width === opts.viewport.width &&
      size.height === opts.viewport.height, `${shot}: ${JSON.stringify(size)}`);
    if (opts.colorScheme === 'dark') {
      await vp.goto(url + '/#model=val');
      await waitFor(async () => Number(await vp.getAttribute('#detail-chart', 'data-points', { timeout: 1000 }).catch(() => 0)) > 0 &&
        await vp.evaluate(() => ET.idle()), 15000);
      await vp.screenshot({ path: path.join(out, 'dashboard-model-dark-1400x900.png'), fullPage: true });
    }
    await ctx.close();
  }
  check('light theme: text and muted text are readable (contrast at least 4.5:1)', lightText.ratio >= 4.5 && lightMuted.ratio >= 4.5,
    `text ${lightText.ratio.toFixed(1)}:1, muted ${lightMuted.ratio.toFixed(1)}:1`);

  // -- the checks below can fail: a page that loads from another host and logs errors -------
  {
    const sink = { foreign: [], errors: [], notFound: [] };
    const ctx = await browser.newContext();
    const cp = await ctx.newPage();
    watch(cp, ' (control)', sink);
    await cp.goto(url + '/healthz');
    await cp.evaluate(() => {
      fetch('http://127.0.0.2:9/elsewhere').catch(() => {});
      console.error('control: an error on purpose');
      setTimeout(() => { throw new Error('control: thrown on purpose'); });
    });
    const caught = await waitFor(() => sink.foreign.length > 0 && sink.errors.some((e) => /^console/.test(e)) &&
      sink.errors.some((e) => /^pageerror/.test(e)), 10000);
    check('(control) a request to another host and script errors are caught', !!caught, JSON.stringify(sink));
    await ctx.close();
  }
}

// Only the cards in the viewport are drawn: in a viewport one card high, a card added below
// the others (a new model whose name sorts last) gets its point count (data-points, written
// for every card) but no chart (no data-series, no canvas) until it is scrolled into view;
// then it is drawn (its chart's series and canvas).  The card is made after the page has
// laid out the others, so it has never been in view (a card that was, while the list was
// still filling, keeps the chart it got then).
export async function offScreenCards({ browser, url, token, watch, check, waitFor, api }) {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 420 } });
  const name = 'zz-offscreen';
  try {
    await ctx.addInitScript((t) => localStorage.setItem('easytorch.token', t), token);
    const p = await ctx.newPage();
    watch(p, ' (short viewport)');
    await p.goto(url + '/');
    await waitFor(async () => (await p.$$('#models article')).length >= 3 && await p.evaluate(() => ET.idle()), 10000);
    await api('POST', '/v1/models', { name, layers: [{ type: 'Linear', in_features: 1, out_features: 1 }],
      loss: 'MSELoss', optimizer: { type: 'SGD', lr: 0.01 } });
    await api('POST', `/v1/models/${name}/train`, { inputs: [[1], [2]], targets: [[2], [4]], epochs: 5 });
    const last = `#models article[data-model="${name}"]`;
    await waitFor(async () => await p.evaluate((sel) => document.querySelector(sel + ' .plot')?.dataset.points === '5', last) &&
      await p.evaluate(() => ET.idle()), 10000);
    const before = await p.evaluate((sel) => {
      const c = document.querySelector(sel), r = c.getBoundingClientRect();
      return { below: r.top > innerHeight, last: c === c.parentElement.lastElementChild, points: c.querySelector('.plot').dataset.points,
        series: c.querySelector('.plot').dataset.series, canvas: !!c.querySelector('.plot canvas') };
    }, last);
    await p.$eval(last, (c) => c.scrollIntoView());
    const drawn = await waitFor(async () => (await p.$(`${last} .plot canvas`)) && (await p.getAttribute(`${last} .plot`, 'data-series')), 10000);
    check('a card below the viewport is not drawn (its point count is kept), and is drawn once scrolled into view',
      before.below && before.last && before.points === '5' && before.series === undefined && !before.canvas && !!drawn,
      `${name}: before ${JSON.stringify(before)}, after: series ${await p.getAttribute(`${last} .plot`, 'data-series')}`);
  } finally {
    await ctx.close();
    await api('DELETE', `/v1/models/${name}`).catch(() => {});
  }
}
