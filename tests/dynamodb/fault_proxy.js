#!/usr/bin/env node
// A DynamoDB proxy that injects faults on command, for the DynamoDB backend's tests
// (tests/support/fault_proxy.h drives it). Node built-ins only.
//
//   node fault_proxy.js --port P --upstream-port U [--upstream-host 127.0.0.1]
//
// Listens on 127.0.0.1:P (keep-alive) and forwards every DynamoDB request to the upstream
// (dynalite) over a keep-alive pool. When the upstream cannot be reached the client's
// connection is dropped, as it would be by a DynamoDB that is gone.
//
// Control, on the same port:
//   POST /__fault {"throttle": N}               the next N requests: 400 ProvisionedThroughputExceededException
//   POST /__fault {"status": 500|503, "count": N} the next N requests: that status, InternalServerError /
//                                               ServiceUnavailableException
//   POST /__fault {"unprocessed": N}            the next N BatchWriteItem / BatchGetItem: only the first half
//                                               (rounded down) of their items / keys reach the upstream, the
//                                               rest come back in UnprocessedItems / UnprocessedKeys
//   POST /__fault {"delay_ms": D, "count": N}   the next N requests wait D ms before anything else
//   POST /__fault {"reset": true}               no more faults (the counts of injected ones stay)
//   (keys may be combined; each answers 200 with the faults still pending)
//   GET  /__stats                               {"requests": {Operation: n}, "total_requests", "items_written",
//                                               "items_deleted", "items_read", "faults": {...}}
//   POST /__stats/reset                         zeroes the counts
//
// A request is delayed first, then throttled, then failed with a status, then split; each
// pending fault counts down only on the requests it applies to.
'use strict'

const http = require('http')

function arg (name, fallback) {
  const i = process.argv.indexOf('--' + name)
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback
}
const port = Number(arg('port', '0'))
const upstreamHost = arg('upstream-host', '127.0.0.1')
const upstreamPort = Number(arg('upstream-port', '0'))
if (!upstreamPort) {
  console.error('usage: fault_proxy.js --port P --upstream-port U [--upstream-host H]')
  process.exit(2)
}

const upstreamAgent = new http.Agent({ keepAlive: true, maxSockets: 64 })

// --- state

const faults = { throttle: 0, status: 0, statusCount: 0, unprocessed: 0, delayMs: 0, delayCount: 0 }

function freshStats () {
  return {
    requests: {},
    total_requests: 0,
    items_written: 0,   // PutItem, UpdateItem and BatchWriteItem's PutRequests the upstream took
    items_deleted: 0,   // DeleteItem and BatchWriteItem's DeleteRequests the upstream took
    items_read: 0,      // items GetItem and BatchGetItem returned
    faults: { throttle: 0, status_500: 0, status_503: 0, status_other: 0, unprocessed: 0, delay: 0 },
  }
}
let stats = freshStats()

function pendingFaults () {
  return {
    throttle: faults.throttle,
    status: faults.status,
    status_count: faults.statusCount,
    unprocessed: faults.unprocessed,
    delay_ms: faults.delayMs,
    delay_count: faults.delayCount,
  }
}

// --- DynamoDB-looking answers

// The CRC32 DynamoDB sends in x-amz-crc32 (SDKs check it): recomputed for answers the
// proxy makes or changes.
const crcTable = new Int32Array(256).map((_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c
})
function crc32 (buf) {
  let c = -1
  for (let i = 0; i < buf.length; i++) c = crcTable[(c ^ buf[i]) & 0xff] ^ (c >>> 8)
  return (c ^ -1) >>> 0
}

let requestIds = 0
function answer (res, status, object, extraHeaders) {
  const body = Buffer.from(JSON.stringify(object))
  res.writeHead(status, Object.assign({
    'x-amzn-RequestId': 'FAULTPROXY' + String(++requestIds).padStart(42, '0'),
    'x-amz-crc32': String(crc32(body)),
    'Content-Type': 'application/x-amz-json-1.0',
    'Content-Length': body.length,
  }, extraHeaders || {}))
  res.end(body)
}

function throttled (res) {
  answer(res, 400, {
    __type: 'com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException',
    message: 'The level of configured provisioned throughput for the table was exceeded. ' +
      'Consider increasing your provisioning level with the UpdateTable API.',
  })
}

function serverError (res, status) {
  if (status === 503) {
    answer(res, 503, {
      __type: 'com.amazonaws.dynamodb.v20120810#ServiceUnavailableException',
      message: 'Service unavailable (injected by fault_proxy)',
    })
  } else {
    answer(res, status, {
      __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError',
      message: 'Internal server error (injected by fault_proxy)',
    })
  }
}

// --- splitting batches

// BatchWriteItem {"RequestItems": {table: [{PutRequest}|{DeleteRequest}, ...]}}: the request
// to forward (null when nothing is) and the requests held back, by table.
function splitWrites (data) {
  const all = []
  for (const [table, reqs] of Object.entries(data.RequestItems || {})) {
    for (const r of reqs) all.push([table, r])
  }
  const keep = Math.floor(all.length / 2)
  const forward = {}
  const held = {}
  all.forEach(([table, r], i) => {
    const into = i < keep ? forward : held
    ;(into[table] = into[table] || []).push(r)
  })
  return { forward: keep ? Object.assign({}, data, { RequestItems: forward }) : null, held }
}

// BatchGetItem {"RequestItems": {table: {"Keys": [...], ...}}}: the same, each table's other
// fields (projection, ConsistentRead) kept with its keys on both sides.
function splitGets (data) {
  const all = []
  for (const [table, spec] of Object.entries(data.RequestItems || {})) {
    for (const k of spec.Keys || []) all.push([table, k])
  }
  const keep = Math.floor(all.length / 2)
  const forward = {}
  const held = {}
  all.forEach(([table, k], i) => {
    const into = i < keep ? forward : held
    if (!into[table]) into[table] = Object.assign({}, data.RequestItems[table], { Keys: [] })
    into[table].Keys.push(k)
  })
  return { forward: keep ? Object.assign({}, data, { RequestItems: forward }) : null, held }
}

function mergeUnprocessedItems (upstream, held) {
  const out = Object.assign({}, upstream || {})
  for (const [table, reqs] of Object.entries(held)) out[table] = (out[table] || []).concat(reqs)
  return out
}

function mergeUnprocessedKeys (upstream, held) {
  const out = Object.assign({}, upstream || {})
  for (const [table, spec] of Object.entries(held)) {
    out[table] = out[table]
      ? Object.assign({}, out[table], { Keys: out[table].Keys.concat(spec.Keys) })
      : spec
  }
  return out
}

function count (obj, fn) {
  let n = 0
  for (const v of Object.values(obj || {})) n += fn(v)
  return n
}

// --- counting what the upstream did

function record (operation, status, sent, received) {
  if (status !== 200) return
  switch (operation) {
    case 'PutItem':
    case 'UpdateItem':
      stats.items_written++
      break
    case 'DeleteItem':
      stats.items_deleted++
      break
    case 'GetItem':
      if (received && received.Item) stats.items_read++
      break
    case 'BatchGetItem':
      stats.items_read += count(received && received.Responses, (items) => items.length)
      break
    case 'BatchWriteItem': {
      // What was sent, less what the upstream itself left unprocessed.
      const left = new Set()
      for (const reqs of Object.values((received && received.UnprocessedItems) || {})) {
        for (const r of reqs) left.add(JSON.stringify(r))
      }
      for (const reqs of Object.values(sent.RequestItems || {})) {
        for (const r of reqs) {
          if (left.has(JSON.stringify(r))) continue
          if (r.PutRequest) stats.items_written++
          else if (r.DeleteRequest) stats.items_deleted++
        }
      }
      break
    }
  }
}

function parseJson (buf) {
  try {
    return JSON.parse(buf.toString('utf8'))
  }
  catch {
    return undefined
  }
}

// --- forwarding

const hopByHop = new Set([ 'connection', 'keep-alive', 'transfer-encoding', 'content-length',
  'proxy-connection', 'te', 'trailer', 'upgrade' ])

// Sends `body` upstream as the client's request; calls back with (status, headers, body) or
// null when the upstream could not be reached.
function forward (req, body, cb) {
  const headers = {}
  for (const [k, v] of Object.entries(req.headers)) if (!hopByHop.has(k)) headers[k] = v
  headers['content-length'] = body.length
  const up = http.request({
    host: upstreamHost, port: upstreamPort, method: req.method, path: req.url, headers,
    agent: upstreamAgent,
  }, (upRes) => {
    const chunks = []
    upRes.on('data', (c) => chunks.push(c))
    upRes.on('end', () => cb(upRes.statusCode, upRes.headers, Buffer.concat(chunks)))
    upRes.on('error', () => cb(null))
  })
  up.on('error', () => cb(null))
  up.end(body)
}

function reply (res, status, headers, body) {
  const out = {}
  for (const [k, v] of Object.entries(headers)) if (!hopByHop.has(k)) out[k] = v
  out['content-length'] = body.length
  res.writeHead(status, out)
  res.end(body)
}

function handleDynamo (req, res, body) {
  const operation = String(req.headers['x-amz-target'] || '').split('.')[1] || '(none)'
  stats.requests[operation] = (stats.requests[operation] || 0) + 1
  stats.total_requests++

  const proceed = () => {
    if (faults.throttle > 0) {
      faults.throttle--
      stats.faults.throttle++
      return throttled(res)
    }
    if (faults.statusCount > 0) {
      faults.statusCount--
      const key = faults.status === 500 || faults.status === 503 ? 'status_' + faults.status : 'status_other'
      stats.faults[key]++
      return serverError(res, faults.status)
    }

    const data = parseJson(body)
    const batch = operation === 'BatchWriteItem' || operation === 'BatchGetItem'
    if (faults.unprocessed > 0 && batch && data && data.RequestItems) {
      faults.unprocessed--
      stats.faults.unprocessed++
      const writes = operation === 'BatchWriteItem'
      const split = writes ? splitWrites(data) : splitGets(data)
      if (!split.forward) {
        // Nothing to send: all of it comes back unprocessed, as DynamoDB may answer.
        return answer(res, 200, writes
          ? { UnprocessedItems: split.held }
          : { Responses: Object.fromEntries(Object.keys(split.held).map((t) => [ t, [] ])),
              UnprocessedKeys: split.held })
      }
      const sent = Buffer.from(JSON.stringify(split.forward))
      return forward(req, sent, (status, headers, upBody) => {
        if (status === null) return res.socket.destroy()
        const got = parseJson(upBody)
        record(operation, status, split.forward, got)
        if (status !== 200 || !got) return reply(res, status, headers, upBody)
        if (writes) got.UnprocessedItems = mergeUnprocessedItems(got.UnprocessedItems, split.held)
        else got.UnprocessedKeys = mergeUnprocessedKeys(got.UnprocessedKeys, split.held)
        const merged = Buffer.from(JSON.stringify(got))
        headers['x-amz-crc32'] = String(crc32(merged))
        reply(res, 200, headers, merged)
      })
    }

    forward(req, body, (status, headers, upBody) => {
      if (status === null) return res.socket.destroy()
      record(operation, status, data || {}, parseJson(upBody))
      reply(res, status, headers, upBody)
    })
  }

  if (faults.delayCount > 0) {
    faults.delayCount--
    stats.faults.delay++
    return setTimeout(proceed, faults.delayMs)
  }
  proceed()
}

// --- control

function nonNegativeInt (v) {
  return Number.isInteger(v) && v >= 0
}

function handleFault (res, body) {
  const c = parseJson(body)
  if (!c || typeof c !== 'object' || Array.isArray(c)) return answer(res, 400, { error: 'expected a JSON object' })
  const bad = (why) => answer(res, 400, { error: why })
  if ('throttle' in c && !nonNegativeInt(c.throttle)) return bad('throttle: a count')
  if ('status' in c && !(Number.isInteger(c.status) && c.status >= 500 && c.status <= 599)) {
    return bad('status: 500..599')
  }
  if ('status' in c && !nonNegativeInt(c.count)) return bad('status needs count')
  if ('unprocessed' in c && !nonNegativeInt(c.unprocessed)) return bad('unprocessed: a count')
  if ('delay_ms' in c && !(nonNegativeInt(c.delay_ms) && nonNegativeInt(c.count))) {
    return bad('delay_ms needs count')
  }
  if (c.reset) {
    Object.assign(faults, { throttle: 0, status: 0, statusCount: 0, unprocessed: 0, delayMs: 0, delayCount: 0 })
  }
  if ('throttle' in c) faults.throttle = c.throttle
  if ('status' in c) Object.assign(faults, { status: c.status, statusCount: c.count })
  if ('unprocessed' in c) faults.unprocessed = c.unprocessed
  if ('delay_ms' in c) Object.assign(faults, { delayMs: c.delay_ms, delayCount: c.count })
  answer(res, 200, pendingFaults())
}

const server = http.createServer({ keepAlive: true }, (req, res) => {
  const chunks = []
  req.on('data', (c) => chunks.push(c))
  req.on('end', () => {
    const body = Buffer.concat(chunks)
    const path = req.url.split('?')[0]
    if (path === '/__fault' && req.method === 'POST') return handleFault(res, body)
    if (path === '/__fault' && req.method === 'GET') return answer(res, 200, pendingFaults())
    if (path === '/__stats' && req.method === 'GET') return answer(res, 200, stats)
    if (path === '/__stats/reset' && req.method === 'POST') {
      stats = freshStats()
      return answer(res, 200, stats)
    }
    handleDynamo(req, res, body)
  })
})
server.keepAliveTimeout = 60000
server.headersTimeout = 65000
server.listen(port, '127.0.0.1', () => {
  console.log('fault_proxy listening on 127.0.0.1:%d, upstream %s:%d', server.address().port,
    upstreamHost, upstreamPort)
})
