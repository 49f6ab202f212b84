#!/usr/bin/env node
// `npm install` hook of the `sendpromptly` package.
//
// A package that ships a prebuilt `sendpromptly.<platform>.node` needs
// nothing. A source checkout (this folder inside the SendPromptly workspace)
// builds the native module with cargo: no npm tooling is needed for that,
// so it works for `npm install ./bindings/node` from another project, where
// this package's devDependencies (the napi CLI) are not installed.
//
// Settings (environment):
//   SENDPROMPTLY_NODE_PROFILE  `release` (default) or `debug`
//   SENDPROMPTLY_NODE_SKIP_BUILD=1  do nothing (e.g. when building otherwise)
'use strict'

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const here = path.resolve(__dirname, '..')

function isMusl() {
  if (process.platform !== 'linux') return false
  try {
    const report = process.report.getReport()
    const header = typeof report === 'string' ? JSON.parse(report).header : report.header
    return !header.glibcVersionRuntime
  } catch {
    return false
  }
}

/** The platform suffix the generated loader (`native.js`) looks for. */
function platformSuffix() {
  const { platform, arch } = process
  if (platform === 'linux') return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

function main() {
  if (process.env.SENDPROMPTLY_NODE_SKIP_BUILD === '1') return
  const target = path.join(here, `sendpromptly.${platformSuffix()}.node`)
  const manifest = path.join(here, 'Cargo.toml')
  if (!fs.existsSync(manifest)) {
    if (fs.existsSync(target)) return
    fail(`no prebuilt ${path.basename(target)} in this package and no Rust sources to build it from`)
  }
  const profile = process.env.SENDPROMPTLY_NODE_PROFILE === 'debug' ? 'debug' : 'release'
  const args = ['build', '--manifest-path', manifest, '--lib', '--message-format=json-render-diagnostics']
  if (profile === 'release') args.push('--release')
  if (fs.existsSync(path.join(here, '..', '..', 'Cargo.lock'))) args.push('--locked')
  console.error(`sendpromptly: building the native module (cargo ${profile} build; the first build takes a few minutes)`)
  const cargo = process.env.CARGO || 'cargo'
  const run = spawnSync(cargo, args, { cwd: here, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 256 * 1024 * 1024 })
  if (run.error) fail(`could not run ${cargo} (${run.error.message}): install Rust from https://rustup.rs`)
  if (run.status !== 0) fail(`cargo build failed (exit ${run.status})`)
  let library
  for (const line of run.stdout.toString().split('\n')) {
    if (!line.startsWith('{')) continue
    const message = JSON.parse(line)
    if (message.reason === 'compiler-artifact' && message.target.name === 'sendpromptly_node') {
      library = message.filenames.find((file) => /\.(so|dylib|dll)$/.test(file))
    }
  }
  if (!library) fail('cargo did not report the built library')
  fs.copyFileSync(library, target)
  console.error(`sendpromptly: built ${path.relative(process.cwd(), target) || target}`)
}

function fail(message) {
  console.error(`sendpromptly: ${message}`)
  process.exit(1)
}

main()
