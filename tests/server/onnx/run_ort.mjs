// run_ort.mjs MODEL.onnx CASES.json -> prints JSON: one {"dims", "data"} per case, the
// output of running MODEL.onnx in onnxruntime (onnxruntime-web's WebAssembly backend, in
// node) on the case's input {"dims": [...], "data": [...], "dtype": "float32"|"int64"|"bool"}, or
// for a case {"feeds": {name: such an input, ...}} every output: {name: {"dims", "data"}}.
// node_modules is git-ignored: `npm ci` here installs package-lock.json's versions; this
// script runs it when onnxruntime-web is missing.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
let ort;
try {
  ort = require('onnxruntime-web');
} catch (e) {
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: here, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`npm ci in ${here} failed (${r.status ?? r.error})`);
    // ../shared/tools/fresh-debian's container reaches the npm registry only through a
    // TLS proxy whose CA it lacks; CI and real machines install it (as test_dashboard.mjs).
    process.exit(process.env.FRESH_DEBIAN === '1' ? 77 : 2);
  }
  ort = require('onnxruntime-web');
}
ort.env.wasm.numThreads = 1;

const [model, casesFile] = process.argv.slice(2);
const cases = JSON.parse(readFileSync(casesFile, 'utf8'));
const session = await ort.InferenceSession.create(readFileSync(model));
const out = [];
const tensor = (c) => new ort.Tensor(c.dtype || 'float32', c.dtype === 'int64'
  ? BigInt64Array.from(c.data.map(BigInt)) : c.dtype === 'bool' ? Uint8Array.from(c.data, Number)
    : Float32Array.from(c.data), c.dims);
const plain = (y) => ({ dims: Array.from(y.dims), data: Array.from(y.data, Number) });
for (const c of cases) {
  if (c.feeds) { // several inputs by name -> every output by name
    const feeds = {};
    for (const [k, v] of Object.entries(c.feeds)) feeds[k] = tensor(v);
    const res = await session.run(feeds);
    const o = {};
    for (const k of session.outputNames) o[k] = plain(res[k]);
    out.push(o);
    continue;
  }
  const res = await session.run({ [session.inputNames[0]]: tensor(c) });
  out.push(plain(res[session.outputNames[0]]));
}
console.log(JSON.stringify({ inputs: session.inputNames, outputs: session.outputNames, results: out }));
