// validate_openapi.mjs - checks docs/openapi.json, the source of truth of the
// HTTP API:
//   1. against the official OpenAPI 3.1 schemas (@seriousme/openapi-schema-validator,
//      which also resolves every internal $ref);
//   2. every schema in it (components and the inline ones of parameters, bodies and
//      responses) compiles with Ajv in strict JSON Schema 2020-12 mode (so a typo in a
//      keyword is an error, not an ignored annotation);
//   3. every example in it validates against the schema it illustrates.
// Usage: node validate_openapi.mjs [path/to/openapi.json]; prints `N passed, M failed`.
// node_modules is git-ignored: `npm ci` here installs the versions of package-lock.json
// (the test runs it when they are missing).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const docPath = process.argv[2] || path.join(here, '..', '..', '..', 'docs', 'openapi.json');
let passed = 0, failed = 0;
function check(what, ok, detail) {
  if (ok) { passed++; console.log(`ok   ${what}`); }
  else { failed++; console.log(`FAIL ${what}${detail ? ': ' + detail : ''}`); }
}
function finish() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed || !passed ? 1 : 0);
}

if (!existsSync(path.join(here, 'node_modules', '@seriousme', 'openapi-schema-validator'))) {
  console.log(`validators missing: npm ci in ${here}`);
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: here, stdio: 'inherit' });
  if (r.status !== 0) console.log(`npm ci failed (${r.status ?? r.error})`);
}
let Validator, Ajv2020;
try {
  ({ Validator } = await import('@seriousme/openapi-schema-validator'));
  Ajv2020 = (await import('ajv/dist/2020.js')).default;
} catch (e) {
  if (process.env.FRESH_DEBIAN === '1') {
    // ../shared/tools/fresh-debian's container reaches the npm registry only through a
    // TLS proxy whose CA it lacks; CI and real machines install it (as test_dashboard.mjs).
    console.log(`SKIP: the validators could not be installed in this container (${e.message})`);
    process.exit(77);
  }
  check('the validators are installed', false, `run \`npm ci\` in ${here} (${e.message})`);
  finish();
}

const doc = JSON.parse(readFileSync(docPath, 'utf8'));

// 1. the OpenAPI 3.1 schema
const v = new Validator();
const res = await v.validate(structuredClone(doc));
check(`${path.basename(docPath)} is a valid OpenAPI ${doc.openapi} document`, res.valid,
  JSON.stringify(res.errors, null, 1)?.slice(0, 3000));
check('it is OpenAPI 3.1', /^3\.1\./.test(doc.openapi), doc.openapi);

// 2. every schema compiles strictly.  They all live in one wrapper document so the
// "#/components/schemas/..." references resolve as in the OpenAPI document.
const inline = [];   // [where, schema, examples[]]
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];
const deref = (x) => {
  while (x && x.$ref) x = x.$ref.slice(2).split('/').reduce((o, k) => o && o[k], doc);
  return x;
};
function media(where, content) {
  for (const [mt, m] of Object.entries(content || {})) {
    const ex = [];
    if ('example' in m) ex.push(m.example);
    for (const e of Object.values(m.examples || {})) if ('value' in deref(e)) ex.push(deref(e).value);
    if (m.schema) inline.push([`${where} ${mt}`, m.schema, ex]);
  }
}
for (const [p, item] of Object.entries(doc.paths || {})) {
  for (const prm of item.parameters || []) if (deref(prm).schema) inline.push([`${p} parameter ${deref(prm).name}`, deref(prm).schema, []]);
  for (const m of METHODS) {
    const op = item[m];
    if (!op) continue;
    const where = `${m.toUpperCase()} ${p}`;
    for (const prm of op.parameters || []) if (deref(prm).schema) inline.push([`${where} parameter ${deref(prm).name}`, deref(prm).schema, []]);
    if (op.requestBody) media(`${where} request`, deref(op.requestBody).content);
    for (const [code, r] of Object.entries(op.responses || {})) media(`${where} ${code}`, deref(r).content);
  }
}
for (const [n, r] of Object.entries(doc.components?.responses || {})) media(`response ${n}`, r.content);

// discriminator stays an annotation: Ajv does not take its "mapping"; oneOf with a
// const "type" per alternative validates the same thing
const ajv = new Ajv2020({ strict: true, allErrors: true });
// OpenAPI's own keywords inside schemas, and the wrapper's containers
for (const k of ['example', 'externalDocs', 'xml', 'discriminator', 'components', 'x-inline']) ajv.addKeyword(k);
const wrapper = { $id: 'urn:easytorch:openapi', components: { schemas: doc.components?.schemas || {} },
  'x-inline': inline.map(([, s]) => s) };
let compiledAll = true;
try {
  ajv.addSchema(wrapper);
} catch (e) {
  compiledAll = false;
  check('the schemas form one JSON Schema 2020-12 document', false, e.message);
}
let compiledSchemas = 0;
const validators = new Map();
for (const name of Object.keys(doc.components?.schemas || {})) {
  try {
    validators.set(name, ajv.compile({ $ref: `urn:easytorch:openapi#/components/schemas/${name}` }));
    compiledSchemas++;
  } catch (e) {
    compiledAll = false;
    check(`components.schemas.${name} compiles (strict 2020-12)`, false, e.message);
  }
}
check(`all ${compiledSchemas} component schemas compile in strict JSON Schema 2020-12`, compiledAll &&
  compiledSchemas === Object.keys(doc.components?.schemas || {}).length);

// 3. examples
let nex = 0, badex = 0;
inline.forEach(([where, , examples], i) => {
  let fn;
  try {
    fn = ajv.compile({ $ref: `urn:easytorch:openapi#/x-inline/${i}` });
  } catch (e) {
    check(`${where}: schema compiles`, false, e.message);
    return;
  }
  for (const ex of examples) {
    nex++;
    if (!fn(ex)) { badex++; check(`${where}: example validates`, false, ajv.errorsText(fn.errors)); }
  }
});
for (const [name, s] of Object.entries(doc.components?.schemas || {})) {
  if ('example' in s && validators.has(name)) {
    nex++;
    const fn = validators.get(name);
    if (!fn(s.example)) { badex++; check(`${name}: example validates`, false, ajv.errorsText(fn.errors)); }
  }
}
check(`${inline.length} inline schemas compile and ${nex} examples validate against their schemas`, badex === 0 && inline.length > 0);

// every operation is complete: an operationId (unique), a summary, a tag, responses
const ids = new Set();
let opsOk = true, nops = 0;
for (const [p, item] of Object.entries(doc.paths || {})) {
  for (const m of METHODS) {
    const op = item[m];
    if (!op) continue;
    nops++;
    const problems = [];
    if (!op.operationId) problems.push('no operationId');
    else if (ids.has(op.operationId)) problems.push(`operationId ${op.operationId} repeated`);
    ids.add(op.operationId);
    if (!op.summary) problems.push('no summary');
    if (!op.tags || !op.tags.length) problems.push('no tag');
    if (!Object.keys(op.responses || {}).some((c) => /^2/.test(c))) problems.push('no 2xx response');
    if ('default' in (op.responses || {})) problems.push('a "default" response (list every status)');
    for (const [c, r] of Object.entries(op.responses || {})) {
      if (!/^[1-5][0-9][0-9]$/.test(c)) problems.push(`status "${c}"`);
      if (/^[45]/.test(c)) {
        const j = deref(r).content?.['application/json'];
        if (!j) problems.push(`${c} has no application/json error body`);
      }
    }
    const tplVars = [...p.matchAll(/\{([^}]+)\}/g)].map((x) => x[1]);
    const pathParams = [...(item.parameters || []), ...(op.parameters || [])].map(deref).filter((x) => x.in === 'path').map((x) => x.name);
    for (const t of tplVars) if (!pathParams.includes(t)) problems.push(`path parameter {${t}} not declared`);
    if (problems.length) { opsOk = false; check(`${m.toUpperCase()} ${p}`, false, problems.join('; ')); }
  }
}
check(`all ${nops} operations have an operationId, summary, tag, a 2xx and JSON error bodies`, opsOk && nops > 0);
finish();
