// A TLS front for dynalite, for the DynamoDB backend's HTTPS tests: terminates TLS with the
// given certificate and key on 127.0.0.1:--port and forwards every request, keep-alive on
// both sides, to 127.0.0.1:--upstream-port. Node built-ins only.
'use strict'
const fs = require('fs')
const http = require('http')
const https = require('https')

function arg (name) {
  const i = process.argv.indexOf('--' + name)
  if (i < 0 || i + 1 >= process.argv.length) {
    console.error('tls_front: --%s is required', name)
    process.exit(2)
  }
  return process.argv[i + 1]
}

const port = Number(arg('port'))
const upstreamPort = Number(arg('upstream-port'))
const agent = new http.Agent({ keepAlive: true })
const server = https.createServer({ cert: fs.readFileSync(arg('cert')), key: fs.readFileSync(arg('key')) },
  (req, res) => {
    const up = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url,
      headers: req.headers, agent }, (upRes) => {
      res.writeHead(upRes.statusCode, upRes.headers)
      upRes.pipe(res)
    })
    up.on('error', () => res.destroy())
    req.pipe(up)
  })
server.keepAliveTimeout = 60000
server.listen(port, '127.0.0.1', () => console.log('tls_front on 127.0.0.1:%d', port))
