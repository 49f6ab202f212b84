// Fixture of bindings/node/test/next-real.test.js: a minimal Next.js App
// Router app using `sendpromptly/next`, built with `next build` and served
// with `next start` by that test. It builds offline: no fonts, no images,
// no telemetry (the test sets NEXT_TELEMETRY_DISABLED=1).
import path from 'node:path'
import { fileURLToPath } from 'node:url'

// bindings/node: where `next`, `react` and `sendpromptly` itself resolve from.
const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

/** @type {import('next').NextConfig} */
export default {
  // The SDK loads a native module: keep it a plain require at run time (as docs/integrations.md says).
  serverExternalPackages: ['sendpromptly'],
  turbopack: { root: packageRoot },
  outputFileTracingRoot: packageRoot,
  images: { unoptimized: true },
  poweredByHeader: false,
}
