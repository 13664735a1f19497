// browser.mjs - what the Chromium tests (test_dashboard.mjs, test_apidocs.mjs) share:
// their command line, the check/finish tally (`N passed, M failed`), easytorchd daemons on
// free ports, and playwright-core driving Debian's /usr/bin/chromium.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const args = process.argv.slice(2);
export const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
export const EXE = opt('--easytorchd', process.env.EASYTORCHD);
export const OUT = path.resolve(opt('--out', process.env.SCREENSHOT_DIR || '.'));
export const CHROMIUM = opt('--chromium', '/usr/bin/chromium');

let passed = 0, failed = 0;
export function check(name, ok, detail = '') {
  if (ok) { passed++; console.log(`ok: ${name}${detail ? ` (${detail})` : ''}`); }
  else { failed++; console.log(`FAIL: ${name}${detail ? `: ${detail}` : ''}`); }
  return ok;
}
export function finish() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed || !passed ? 1 : 0);
}

// Waits for cond() to hold; the limit only turns a hang into a failure.
export async function waitFor(cond, limitMs = 20000, everyMs = 100) {
  const end = Date.now() + limitMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) return v;
    await sleep(everyMs);
  }
}

// easytorchd on a free loopback port with a temporary data dir (and a token file when
// token is given), none of the caller's EASYTORCH_* settings; resolves to
// { proc, dir, url, log() } once it prints "listening on".
export function startDaemon(extra = [], token = null) {
  const dir = mkdtempSync(path.join(tmpdir(), 'et-browser-'));
  const a = ['--listen', '127.0.0.1:0', '--data-dir', path.join(dir, 'data'), ...extra];
  if (token) {
    writeFileSync(path.join(dir, 'token'), token + '\n', { mode: 0o600 });
    a.push('--token-file', path.join(dir, 'token'));
  }
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('EASYTORCH_')) delete env[k];
  const proc = spawn(EXE, a, { stdio: ['ignore', 'ignore', 'pipe'], env });
  let log = '';
  const d = { proc, dir, log: () => log };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('easytorchd printed no "listening on":\n' + log)), 60000);
    proc.stderr.on('data', (chunk) => {
      log += chunk.toString();
      if (log.length > 200000) log = log.slice(-100000);
      const m = /listening on (\S+):(\d+)/.exec(log);
      if (m && !d.url) {
        clearTimeout(timer);
        d.url = `http://127.0.0.1:${m[2]}`;
        resolve(d);
      }
    });
    proc.on('exit', (code) => { clearTimeout(timer); if (!d.url) reject(new Error(`easytorchd exited (${code}):\n${log}`)); });
  });
}

// Until GET /readyz answers 200 (30 s).
export async function ready(d) {
  if (!(await waitFor(async () => (await fetch(d.url + '/readyz').catch(() => ({ ok: false }))).ok, 30000, 50)))
    throw new Error('daemon never ready');
}

// SIGTERM, SIGKILL after 10 s, then its data dir goes.
export async function stopDaemon(d) {
  d.proc.removeAllListeners('exit');
  if (d.proc.exitCode === null && d.proc.signalCode === null) {
    d.proc.kill('SIGTERM');
    await waitFor(() => d.proc.exitCode !== null || d.proc.signalCode !== null, 10000);
    if (d.proc.exitCode === null && d.proc.signalCode === null) d.proc.kill('SIGKILL');
  }
  rmSync(d.dir, { recursive: true, force: true });
}

// playwright-core's chromium after the checks every browser test starts with: the daemon
// and Chromium exist, and the npm modules (installed with `npm ci` here when one is
// missing; node_modules is git-ignored).  null (the failure checked) when it cannot run;
// exits 77 (skip) in fresh-debian's container, which reaches the npm registry only
// through a TLS proxy whose CA it lacks (CI and real machines install it).
export async function loadChromium(here, modules = ['playwright-core']) {
  if (!EXE || !existsSync(EXE)) {
    check('easytorchd is given (--easytorchd)', false, String(EXE));
    return null;
  }
  if (!existsSync(CHROMIUM)) {
    check(`${CHROMIUM} exists`, false, 'apt-get install chromium');
    return null;
  }
  if (!modules.every((m) => existsSync(path.join(here, 'node_modules', m)))) {
    console.log(`${modules.join(' or ')} missing: npm ci in ${here}`);
    const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: here, stdio: 'inherit' });
    if (r.status !== 0) console.log(`npm ci failed (${r.status ?? r.error})`);
  }
  try {
    return (await import('playwright-core')).chromium;
  } catch (e) {
    if (process.env.FRESH_DEBIAN === '1') {
      console.log(`SKIP: playwright-core could not be installed in this container (${e.message})`);
      process.exit(77);
    }
    check('playwright-core is installed', false, `run \`npm ci\` in tests/clients (${e.message})`);
    return null;
  }
}

// Headless Chromium that reaches nothing but what the page asks for.
export function launch(chromium) {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
