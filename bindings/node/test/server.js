'use strict'
// Test fixture: a real `sendpromptly serve` on a free loopback port with a
// temporary SQLite file. The binary is $SENDPROMPTLY_BIN, else
// target/debug/sendpromptly under $CARGO_TARGET_DIR (default: the
// workspace's target/).

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

const root = path.resolve(__dirname, '..', '..', '..')

function binary() {
  if (process.env.SENDPROMPTLY_BIN) return process.env.SENDPROMPTLY_BIN
  const target = process.env.CARGO_TARGET_DIR ? path.resolve(root, process.env.CARGO_TARGET_DIR) : path.join(root, 'target')
  return path.join(target, 'debug', process.platform === 'win32' ? 'sendpromptly.exe' : 'sendpromptly')
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/** Starts the server; resolves to `{ url, apiKey, secret, stop() }`. */
async function startServer() {
  const bin = binary()
  if (!fs.existsSync(bin)) {
    throw new Error(`no server binary at ${bin}: run \`cargo build --bin sendpromptly\` or set SENDPROMPTLY_BIN`)
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sendpromptly-node-test-'))
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const child = spawn(
    bin,
    [
      'serve',
      '--listen', `127.0.0.1:${port}`,
      '--database-url', `sqlite://${path.join(dir, 'test.db')}`,
      '--allow-private-urls',
      '--sweep-interval-ms', '200',
      '--callback-retry-delays', '1',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'warn' } },
  )
  let output = ''
  child.stdout.on('data', (chunk) => (output += chunk))
  child.stderr.on('data', (chunk) => (output += chunk))
  const exited = new Promise((resolve) => child.on('exit', resolve))
  const started = Date.now()
  let apiKey
  let secret
  for (;;) {
    apiKey ??= /API key:\s+(sp_\S+)/.exec(output)?.[1]
    secret ??= /signing secret:\s+(whsec_\S+)/.exec(output)?.[1]
    if (apiKey && secret) {
      try {
        const res = await fetch(`${url}/healthz`)
        if (res.ok) break
      } catch {
        // not listening yet
      }
    }
    if (child.exitCode !== null) throw new Error(`sendpromptly serve exited (${child.exitCode}):\n${output}`)
    if (Date.now() - started > 60_000) {
      child.kill('SIGKILL')
      throw new Error(`sendpromptly serve did not start within 60 s:\n${output}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return {
    url,
    apiKey,
    secret,
    output: () => output,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
        await exited
        clearTimeout(timer)
      }
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

module.exports = { startServer }
