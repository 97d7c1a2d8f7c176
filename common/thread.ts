// Starts a worker thread that runs a TypeScript file. `node --import tsx` compiles .ts
// for the main thread only (Node 20 runs no --import hooks in a Worker), and tsx loaded
// again in every thread would cost each one about 25 MB and 100 to 400 ms of start. So the
// file is compiled once, with everything it imports, into one script of plain JavaScript,
// which each thread runs, as the threads of a server compiled ahead of time would.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

const compiled = new Map<string, string>();

export function startThread(file: URL): Worker {
  return new Worker(compile(file), { eval: true });
}

function compile(file: URL): string {
  const cached = compiled.get(file.href);
  if (cached !== undefined) return cached;
  // Required here, not imported above, so that the compiled script leaves esbuild out.
  const { buildSync } = createRequire(import.meta.url)('esbuild') as typeof import('esbuild');
  const build = buildSync({
    entryPoints: [fileURLToPath(file)],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    write: false,
    define: { 'import.meta.url': JSON.stringify(file.href) },
    logLevel: 'silent',
  });
  const script = build.outputFiles[0].text;
  compiled.set(file.href, script);
  return script;
}
