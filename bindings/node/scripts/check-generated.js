#!/usr/bin/env node
// Fails when the committed `native.js` (loader) and `native.d.ts` (types)
// differ from what the napi CLI generates from the Rust source now.
//
// It builds the native module with `napi build` into a temporary folder and
// compares the generated files byte for byte. `--fix` writes them instead.
'use strict'

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const here = path.resolve(__dirname, '..')
const files = ['native.js', 'native.d.ts']
const fix = process.argv.includes('--fix')

const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sendpromptly-napi-'))
try {
  const cli = path.join(path.dirname(require.resolve('@napi-rs/cli/package.json', { paths: [here] })), 'dist', 'cli.js')
  const run = spawnSync(
    process.execPath,
    [cli, 'build', '--platform', '--output-dir', out, '--js', 'native.js', '--dts', 'native.d.ts', '--no-dts-cache'],
    { cwd: here, stdio: 'inherit' },
  )
  if (run.status !== 0) {
    console.error(`check-generated: napi build failed (exit ${run.status})`)
    process.exit(1)
  }
  let drifted = []
  for (const file of files) {
    const fresh = fs.readFileSync(path.join(out, file), 'utf8')
    const committedPath = path.join(here, file)
    const committed = fs.existsSync(committedPath) ? fs.readFileSync(committedPath, 'utf8') : ''
    if (fresh === committed) continue
    if (fix) {
      fs.writeFileSync(committedPath, fresh)
      console.error(`check-generated: rewrote ${file}`)
    } else {
      drifted.push(file)
      const a = committed.split('\n')
      const b = fresh.split('\n')
      const line = a.findIndex((text, i) => text !== b[i])
      console.error(`check-generated: ${file} differs from the Rust source, first at line ${line + 1}:`)
      console.error(`  committed: ${JSON.stringify(a[line])}`)
      console.error(`  generated: ${JSON.stringify(b[line])}`)
    }
  }
  if (drifted.length) {
    console.error('check-generated: run `npm run check:generated -- --fix` in bindings/node and commit the result')
    process.exit(1)
  }
  console.error(`check-generated: ${files.join(' and ')} match the Rust source`)
} finally {
  fs.rmSync(out, { recursive: true, force: true })
}
