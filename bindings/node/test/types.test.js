'use strict'
// index.d.ts type-checks, and a typical handler written against it compiles
// under `--strict` (TypeScript comes with the napi CLI, a devDependency).

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const path = require('node:path')

test('index.d.ts compiles under tsc --strict', () => {
  const tsc = require.resolve('typescript/bin/tsc', { paths: [path.join(__dirname, '..')] })
  const run = spawnSync(
    process.execPath,
    [tsc, '--noEmit', '--strict', '--lib', 'es2022,dom', '--module', 'nodenext', '--moduleResolution', 'nodenext', path.join(__dirname, 'types-check.ts')],
    { encoding: 'utf8' },
  )
  assert.equal(run.status, 0, run.stdout + run.stderr)
})
