// docs/openapi.yaml checked on its own and against docs/API.md:
// - the spec: OpenAPI 3.1, every $ref resolves, every schema compiles with Ajv (JSON Schema
//   2020-12, strict), operationIds are unique, and the examples it carries validate;
// - docs/API.md: every `$ curl ...` line of a ```console block names an operation of the spec
//   (method from -X, or POST with -d, else GET; templated paths matched as the router does,
//   a literal segment winning over a parameter), its path and query parameters and its -d body
//   validate against the operation's, and the JSON it prints validates against the 2xx
//   response (or, for an error body, against one of the operation's error responses); the
//   server-sent events shown validate against the stream's event schemas.
// Counts what it checked and fails below a floor, so that a parser gone blind cannot pass.
//
// Run: node --test tests/openapi/api_examples.test.js (HEARTBEATD_SOURCE_DIR: the checkout,
// by default the one this file is in). Node 18 or later.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
function need(name) {
  try {
    return require(name);
  } catch (e) {
    throw new Error(`${name} is not installed: run npm ci --prefix ${__dirname} (scripts/setup ` +
      `does); ${e.message}`);
  }
}
const YAML = need('yaml');
const Ajv2020 = need('ajv/dist/2020');

const SOURCE_DIR = process.env.HEARTBEATD_SOURCE_DIR || path.resolve(__dirname, '..', '..');
const SPEC_FILE = path.join(SOURCE_DIR, 'docs', 'openapi.yaml');
const API_MD = path.join(SOURCE_DIR, 'docs', 'API.md');

// Floors: docs/API.md has at least this many of each today; fewer means the parser missed
// them (or examples were deleted: lower the floor in the same commit, on purpose).
const MIN_CURL_EXAMPLES = 26;
const MIN_RESPONSE_BODIES = 15;
const MIN_REQUEST_BODIES = 4;
const MIN_SSE_EVENTS = 3;

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const OPERATION_FIELDS = new Set(['tags', 'summary', 'description', 'externalDocs', 'operationId',
  'parameters', 'requestBody', 'responses', 'callbacks', 'deprecated', 'security', 'servers']);

const spec = YAML.parse(fs.readFileSync(SPEC_FILE, 'utf8'));

// ---- JSON pointers and $refs ----

function pointerGet(doc, pointer) {
  if (pointer === '' || pointer === '#') return doc;
  assert.ok(pointer.startsWith('#/'), `not a local reference: ${pointer}`);
  let node = doc;
  for (const raw of pointer.slice(2).split('/')) {
    const part = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (node === null || typeof node !== 'object' || !(part in node)) return undefined;
    node = node[part];
  }
  return node;
}

function pointerEscape(s) {
  return s.replace(/~/g, '~0').replace(/\//g, '~1');
}

// Every {$ref: ...} in the document, with where it is.
function allRefs(node, at = '#', out = []) {
  if (Array.isArray(node)) {
    node.forEach((v, i) => allRefs(v, `${at}/${i}`, out));
  } else if (node !== null && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref' && typeof v === 'string') out.push({ at, ref: v });
      else allRefs(v, `${at}/${pointerEscape(k)}`, out);
    }
  }
  return out;
}

// Follows $ref chains of non-schema objects (parameters, responses, request bodies).
function deref(node) {
  let seen = 0;
  while (node && typeof node === 'object' && typeof node.$ref === 'string') {
    assert.ok(++seen < 16, `reference loop at ${node.$ref}`);
    const next = pointerGet(spec, node.$ref);
    assert.ok(next !== undefined, `unresolved $ref ${node.$ref}`);
    node = next;
  }
  return node;
}

// ---- schemas ----

// The component schemas become one Ajv schema ("components", with them as $defs); every
// reference to '#/components/schemas/X' becomes 'components#/$defs/X', so that schemas
// anywhere in the spec compile against them.
function rewriteRefs(node) {
  if (Array.isArray(node)) return node.map(rewriteRefs);
  if (node === null || typeof node !== 'object') return node;
  const out = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === '$ref' && typeof v === 'string' && v.startsWith('#/components/schemas/')) {
      out[k] = `components#/$defs/${v.slice('#/components/schemas/'.length)}`;
    } else {
      out[k] = rewriteRefs(v);
    }
  }
  return out;
}

const ajv = new Ajv2020({ strict: true, allErrors: true, allowUnionTypes: true });
ajv.addSchema({ $id: 'components', $defs: rewriteRefs(spec.components.schemas || {}) });

const compiled = new Map();
function validator(schema) {
  if (!compiled.has(schema)) compiled.set(schema, ajv.compile(rewriteRefs(schema)));
  return compiled.get(schema);
}

function check(schema, value, what) {
  const validate = validator(schema);
  const ok = validate(value);
  assert.ok(ok, `${what}: ${JSON.stringify(value)}\n  ${ajv.errorsText(validate.errors, { separator: '\n  ' })}`);
}

function schemaOf(name) {
  const s = spec.components.schemas[name];
  assert.ok(s, `no schema ${name} in components`);
  return s;
}

// Every schema the spec holds, with where: components, parameters, headers, media types.
function allSchemas() {
  const out = [];
  const visit = (node, at) => {
    if (Array.isArray(node)) return node.forEach((v, i) => visit(v, `${at}/${i}`));
    if (node === null || typeof node !== 'object') return;
    for (const [k, v] of Object.entries(node)) {
      const here = `${at}/${pointerEscape(k)}`;
      if (k === 'schema' && v && typeof v === 'object') out.push({ at: here, schema: v });
      else if (at === '#/components' && k === 'schemas') {
        for (const [name, s] of Object.entries(v)) out.push({ at: `${here}/${name}`, schema: s });
      } else if (k === 'x-heartbeatd-events') {
        for (const [name, s] of Object.entries(v)) out.push({ at: `${here}/${name}`, schema: s });
      } else visit(v, here);
    }
  };
  visit(spec, '#');
  return out;
}

// ---- operations ----

function operations() {
  const out = [];
  for (const [p, item] of Object.entries(spec.paths)) {
    for (const m of METHODS) {
      if (item[m]) out.push({ method: m, path: p, op: item[m], item });
    }
  }
  return out;
}

function segments(p) {
  return p.split('/').slice(1);
}

// The operation for a method and a concrete path, as the router picks it: same number of
// segments, literals equal, {params} non-empty; most literal segments wins.
function findOperation(method, concretePath) {
  const want = segments(concretePath);
  let best = null;
  for (const o of operations()) {
    if (o.method !== method) continue;
    const have = segments(o.path);
    if (have.length !== want.length) continue;
    const params = {};
    let literals = 0;
    let ok = true;
    for (let i = 0; i < have.length && ok; ++i) {
      const m = /^\{(.+)\}$/.exec(have[i]);
      if (m) {
        if (want[i] === '') ok = false;
        else params[m[1]] = decodeURIComponent(want[i]);
      } else if (have[i] === want[i]) {
        ++literals;
      } else {
        ok = false;
      }
    }
    if (ok && (!best || literals > best.literals)) best = { ...o, params, literals };
  }
  return best;
}

function parametersOf(o) {
  return [...(o.item.parameters || []), ...(o.op.parameters || [])].map(deref);
}

function jsonSchemaOfContent(content) {
  if (!content) return null;
  for (const [type, media] of Object.entries(content)) {
    if (/^application\/(.+\+)?json/.test(type)) return media.schema || null;
  }
  return null;
}

// ---- docs/API.md ----

// Splits a shell command line into words: quotes and backslashes as the shell does; stops at
// a pipe, a redirection, ';' or a comment.
function shellWords(line) {
  const words = [];
  let cur = null;
  let i = 0;
  const push = () => {
    if (cur !== null) words.push(cur);
    cur = null;
  };
  while (i < line.length) {
    const c = line[i];
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      assert.ok(end > 0, `unterminated quote in: ${line}`);
      cur = (cur || '') + line.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      let j = i + 1;
      let s = '';
      while (j < line.length && line[j] !== '"') {
        if (line[j] === '\\' && j + 1 < line.length) ++j;
        s += line[j++];
      }
      assert.ok(j < line.length, `unterminated quote in: ${line}`);
      cur = (cur || '') + s;
      i = j + 1;
    } else if (c === '\\' && i + 1 < line.length) {
      cur = (cur || '') + line[i + 1];
      i += 2;
    } else if (/\s/.test(c)) {
      push();
      ++i;
    } else if ('|;<>'.includes(c) || (c === '#' && cur === null)) {
      break;
    } else {
      cur = (cur || '') + c;
      ++i;
    }
  }
  push();
  return words;
}

const CURL_ARG_FLAGS = new Set([
  '-X', '--request', '-d', '--data', '--data-raw', '--data-binary', '-H', '--header', '-o',
  '--output', '-w', '--write-out', '--unix-socket', '--cacert', '--cert', '--key', '-u',
  '--user', '--connect-timeout', '-m', '--max-time',
]);

// The media type of a 'Content-Type: ...' header line, lower-cased without parameters; null
// for another header.
function contentTypeOf(headerLine) {
  const m = /^\s*content-type\s*:\s*([^;]*)/i.exec(headerLine);
  return m ? m[1].trim().toLowerCase() : null;
}

function parseCurl(words) {
  const out = { method: null, data: null, url: null, contentType: null };
  for (let i = 1; i < words.length; ++i) {
    const w = words[i];
    if (CURL_ARG_FLAGS.has(w)) {
      const arg = words[++i];
      if (w === '-X' || w === '--request') out.method = arg.toLowerCase();
      if (w.startsWith('-d') || w.startsWith('--data')) out.data = arg;
      if ((w === '-H' || w === '--header') && contentTypeOf(arg)) out.contentType = contentTypeOf(arg);
    } else if (/^https?:\/\//.test(w)) {
      out.url = w;
    } else {
      assert.ok(w.startsWith('-'), `curl argument not understood: ${w} in ${words.join(' ')}`);
    }
  }
  if (!out.method) out.method = out.data !== null ? 'post' : 'get';
  return out;
}

// The fenced blocks of a Markdown file: {lang, lines, line (1-based start)}.
function fencedBlocks(text) {
  const blocks = [];
  let open = null;
  text.split('\n').forEach((line, n) => {
    const fence = /^```(\S*)\s*$/.exec(line);
    if (fence && !open) {
      open = { lang: fence[1], lines: [], line: n + 1 };
    } else if (fence && open && fence[1] === '') {
      blocks.push(open);
      open = null;
    } else if (open) {
      open.lines.push(line);
    }
  });
  assert.equal(open, null, 'docs/API.md ends inside a code block');
  return blocks;
}

// The commands of a console block, each with its output lines. Continued lines (ending in a
// backslash) are joined.
function consoleCommands(block) {
  const cmds = [];
  let cur = null;
  let continued = false;  // the previous line was a command ending in a backslash
  block.lines.forEach((line, i) => {
    if (continued) {
      cur.command += ' ' + line.trim();
    } else if (line.startsWith('$ ')) {
      cur = { command: line.slice(2), output: [], line: block.line + 1 + i };
      cmds.push(cur);
    } else {
      if (cur) cur.output.push(line);
      return;
    }
    continued = /\\$/.test(cur.command);
    if (continued) cur.command = cur.command.replace(/\\$/, '');
  });
  return cmds;
}

function tryJson(text) {
  try {
    return { value: JSON.parse(text) };
  } catch {
    return null;
  }
}

// The values of every "user" member in a response.
function userIds(v, out = []) {
  if (Array.isArray(v)) v.forEach((x) => userIds(x, out));
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      if (k === 'user') out.push(x);
      else userIds(x, out);
    }
  }
  return out;
}

function isErrorBody(v) {
  return v && typeof v === 'object' && !Array.isArray(v) && typeof v.error === 'string';
}

// ---- the tests ----

test('the spec is OpenAPI 3.1: info, paths, operations, parameters', () => {
  assert.match(String(spec.openapi), /^3\.1\.\d+$/);
  assert.ok(spec.info && spec.info.title && spec.info.version, 'info.title and info.version');
  assert.ok(spec.paths && Object.keys(spec.paths).length > 0, 'paths');
  for (const p of Object.keys(spec.paths)) assert.ok(p.startsWith('/'), `path ${p}`);
  const ids = new Set();
  for (const o of operations()) {
    const where = `${o.method.toUpperCase()} ${o.path}`;
    assert.ok(o.op.responses && Object.keys(o.op.responses).length > 0, `${where}: no responses`);
    assert.ok(o.op.operationId, `${where}: no operationId`);
    assert.ok(!ids.has(o.op.operationId), `${where}: operationId ${o.op.operationId} twice`);
    ids.add(o.op.operationId);
    for (const k of Object.keys(o.op)) {
      assert.ok(OPERATION_FIELDS.has(k) || k.startsWith('x-'), `${where}: unknown field ${k}`);
    }
    for (const p of parametersOf(o)) {
      assert.ok(p.name && ['path', 'query', 'header', 'cookie'].includes(p.in),
        `${where}: parameter ${JSON.stringify(p)}`);
      assert.ok(p.schema, `${where}: parameter ${p.name} has no schema`);
      if (p.in === 'path') assert.equal(p.required, true, `${where}: path parameter ${p.name}`);
    }
    if (o.op.requestBody) {
      assert.ok(deref(o.op.requestBody).content, `${where}: request body without content`);
    }
    for (const [status, r] of Object.entries(o.op.responses)) {
      assert.match(status, /^([1-5][0-9][0-9]|default)$/, `${where}: response ${status}`);
      assert.ok(deref(r).description, `${where} ${status}: no description`);
    }
    for (const req of o.op.security || spec.security || []) {
      for (const scheme of Object.keys(req)) {
        assert.ok(spec.components.securitySchemes[scheme], `${where}: no security scheme ${scheme}`);
      }
    }
  }
});

test('every $ref resolves', () => {
  const refs = allRefs(spec);
  assert.ok(refs.length > 20, `only ${refs.length} $refs found`);
  for (const { at, ref } of refs) {
    assert.ok(ref.startsWith('#/'), `${at}: $ref ${ref} is not local`);
    assert.notEqual(pointerGet(spec, ref), undefined, `${at}: $ref ${ref} does not resolve`);
  }
});

test('every schema compiles (JSON Schema 2020-12, strict)', () => {
  const schemas = allSchemas();
  assert.ok(schemas.length > 20, `only ${schemas.length} schemas found`);
  for (const { at, schema } of schemas) {
    try {
      validator(schema);
    } catch (e) {
      assert.fail(`${at}: ${e.message}`);
    }
  }
});

test("the spec's own examples validate", () => {
  let n = 0;
  const visit = (node) => {
    if (Array.isArray(node)) return node.forEach(visit);
    if (node === null || typeof node !== 'object') return;
    for (const [type, media] of Object.entries(node.content || {})) {
      if (!/json/.test(type) || !media.schema) continue;
      for (const [name, ex] of Object.entries(media.examples || {})) {
        check(media.schema, deref(ex).value, `example ${name}`);
        ++n;
      }
      if (media.example !== undefined) {
        check(media.schema, media.example, 'example');
        ++n;
      }
    }
    Object.values(node).forEach(visit);
  };
  visit(spec);
  assert.ok(n >= 2, `only ${n} examples`);
});

test('every curl example in docs/API.md matches the spec', () => {
  const blocks = fencedBlocks(fs.readFileSync(API_MD, 'utf8'));
  const counts = { curl: 0, responses: 0, requests: 0, statuses: 0 };
  for (const block of blocks.filter((b) => b.lang === 'console' || b.lang === '')) {
    for (const cmd of consoleCommands(block)) {
      const words = shellWords(cmd.command);
      if (words[0] !== 'curl') continue;
      const where = `docs/API.md:${cmd.line}: ${cmd.command.trim()}`;
      const curl = parseCurl(words);
      assert.ok(curl.url, `${where}: no URL`);
      const url = new URL(curl.url);
      const o = findOperation(curl.method, url.pathname);
      assert.ok(o, `${where}: no operation ${curl.method.toUpperCase()} ${url.pathname} in docs/openapi.yaml`);
      ++counts.curl;

      const output = cmd.output.join('\n').trim();
      const json = output ? tryJson(output) : null;
      const isError = json && isErrorBody(json.value);

      // Parameters: path and query, against their schemas (not for an example of an error).
      if (!isError) {
        const params = parametersOf(o);
        for (const [name, value] of Object.entries(o.params)) {
          const p = params.find((x) => x.in === 'path' && x.name === name);
          assert.ok(p, `${where}: path parameter ${name} not declared`);
          check(p.schema, value, `${where}: path parameter ${name}`);
        }
        for (const [name, value] of url.searchParams) {
          const p = params.find((x) => x.in === 'query' && x.name === name);
          assert.ok(p, `${where}: query parameter ${name} not declared`);
          // A query value is text: an integer parameter's is checked as the number it spells.
          const typed = p.schema.type === 'integer' && /^-?\d+$/.test(value) ? Number(value) : value;
          check(p.schema, typed, `${where}: query parameter ${name}`);
        }
        for (const p of params.filter((x) => x.required && x.in === 'query')) {
          assert.ok(url.searchParams.has(p.name), `${where}: required ${p.name} missing`);
        }
      }

      // The request body: JSON unless the example names another type, which the operation
      // must then take (a binary body, read from a file, is not checked further).
      if (curl.data !== null && curl.contentType && !/json/.test(curl.contentType)) {
        const body = deref(o.op.requestBody);
        assert.ok(body, `${where}: sends a body, the operation takes none`);
        assert.ok(body.content[curl.contentType],
          `${where}: sends ${curl.contentType}, which the operation does not take`);
        ++counts.requests;
      } else if (curl.data !== null) {
        const body = deref(o.op.requestBody);
        assert.ok(body, `${where}: sends a body, the operation takes none`);
        const schema = jsonSchemaOfContent(body.content);
        assert.ok(schema, `${where}: no JSON schema for the request body`);
        const parsed = tryJson(curl.data);
        assert.ok(parsed, `${where}: -d is not JSON: ${curl.data}`);
        if (!isError) check(schema, parsed.value, `${where}: request body`);
        ++counts.requests;
      } else if (o.op.requestBody) {
        assert.ok(!deref(o.op.requestBody).required, `${where}: the operation needs a body`);
      }

      // What it prints: a status code (-w '%{http_code}'), JSON, or something else (text).
      const responses = o.op.responses;
      if (/^\d{3}$/.test(output)) {
        assert.ok(responses[output], `${where}: prints ${output}, not a documented status`);
        ++counts.statuses;
      } else if (isError) {
        check(schemaOf('Error'), json.value, `${where}: error body`);
        const fits = Object.entries(responses).filter(([status, r]) => {
          if (status === 'default' || status.startsWith('2')) return false;
          const schema = jsonSchemaOfContent(deref(r).content);
          return schema && validator(schema)(json.value);
        });
        assert.ok(fits.length > 0, `${where}: no error response of the operation fits ${output}`);
        ++counts.responses;
      } else if (json) {
        const ok = Object.entries(responses).filter(([status]) => /^2\d\d$/.test(status));
        const schemas = ok.map(([, r]) => jsonSchemaOfContent(deref(r).content)).filter(Boolean);
        assert.equal(schemas.length, 1, `${where}: ${schemas.length} JSON 2xx responses`);
        check(schemas[0], json.value, `${where}: response`);
        // ids=string writes every user id as a string, ids=number (the default) as a number.
        const want = url.searchParams.get('ids') === 'string' ? 'string' : 'number';
        for (const id of userIds(json.value)) {
          assert.equal(typeof id, want, `${where}: a user id written as a ${typeof id}`);
        }
        ++counts.responses;
      } else if (output) {
        // Text (metrics): the operation answers something other than JSON.
        const r = deref(responses['200']);
        assert.ok(r && r.content && Object.keys(r.content).some((t) => !/json/.test(t)),
          `${where}: prints text, but the operation answers JSON: ${output.slice(0, 80)}`);
      }
    }
  }
  console.log(`checked ${counts.curl} curl examples: ${counts.responses} response bodies, ` +
    `${counts.requests} request bodies, ${counts.statuses} status codes`);
  assert.ok(counts.curl >= MIN_CURL_EXAMPLES, `only ${counts.curl} curl examples (floor ${MIN_CURL_EXAMPLES})`);
  assert.ok(counts.responses >= MIN_RESPONSE_BODIES,
    `only ${counts.responses} response bodies (floor ${MIN_RESPONSE_BODIES})`);
  assert.ok(counts.requests >= MIN_REQUEST_BODIES,
    `only ${counts.requests} request bodies (floor ${MIN_REQUEST_BODIES})`);
});

test('the JSON error example and the events shown in docs/API.md validate', () => {
  const blocks = fencedBlocks(fs.readFileSync(API_MD, 'utf8'));
  const stream = spec.paths['/v1/events'].get.responses['200'].content['text/event-stream'];
  const events = stream['x-heartbeatd-events'];
  assert.ok(events, '/v1/events: no x-heartbeatd-events');
  let errors = 0;
  let sse = 0;
  const checkStream = (lines, where) => {
    let name = null;
    for (const line of lines) {
      const field = /^(event|data): (.*)$/.exec(line);
      if (!field) {
        assert.ok(line === '' || line.startsWith(':'), `${where}: not an SSE line: ${line}`);
        if (line === '') name = null;
        continue;
      }
      if (field[1] === 'event') {
        name = field[2];
        assert.ok(events[name], `${where}: event ${name} is not in x-heartbeatd-events`);
      } else {
        assert.ok(name, `${where}: data without event`);
        check(events[name], JSON.parse(field[2]), `${where}: event ${name}`);
        ++sse;
      }
    }
  };
  for (const b of blocks) {
    const where = `docs/API.md:${b.line}`;
    if (b.lang === 'json') {
      const v = tryJson(b.lines.join('\n'));
      if (v && isErrorBody(v.value)) {
        check(schemaOf('Error'), v.value, where);
        ++errors;
      }
    } else if (b.lang === '' && b.lines.some((l) => l.startsWith('event: '))) {
      checkStream(b.lines, where);
    }
  }
  checkStream(stream.example.split('\n'), 'docs/openapi.yaml /v1/events example');
  assert.ok(errors >= 1, 'the error body example of docs/API.md was not found');
  assert.ok(sse >= MIN_SSE_EVENTS, `only ${sse} events checked (floor ${MIN_SSE_EVENTS})`);
});
