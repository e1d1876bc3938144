// The edge as Miniflare runs it for the benches: both workers of the deploy configuration
// (wrangler.toml: the request worker, first, answering; control/wrangler.toml: the control
// worker with the Durable Objects), their vars and bindings, the local origins and builds.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..');

/**
 * Miniflare options for the edge: `{ kvPersist, workers: [request, control] }`.
 * `origins` = { v1, v2 }; `edgeDir` / `controlDir` = built workers (edge/build, edge/build-control).
 */
export async function edgeMiniflareOptions({
  origins,
  kvPersist,
  edgeDir = process.env.EDGEFLAGS_EDGE_BUILD || join(ROOT, 'edge/build'),
  controlDir = process.env.EDGEFLAGS_CONTROL_BUILD || join(ROOT, 'edge/build-control'),
  vars = {},
}) {
  const { unstable_getMiniflareWorkerOptions } = await import('wrangler');
  const worker = (config, name, dir) => {
    const { workerOptions } = unstable_getMiniflareWorkerOptions(join(ROOT, config));
    const bindings = { ...workerOptions.bindings, ORIGIN_URL: origins.v1, CANARY_ORIGIN_URL: origins.v2, ...vars };
    delete bindings.IDENTITY_KEYS;
    return {
      ...workerOptions,
      name,
      // Only what the request path needs: the queues would start a broker and the cron a
      // scheduler, neither of which a proxied request touches.
      queueProducers: undefined,
      queueConsumers: undefined,
      triggers: undefined,
      modules: true,
      scriptPath: join(dir, 'index.js'),
      modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'] }],
      modulesRoot: dir,
      bindings,
    };
  };
  return {
    kvPersist,
    workers: [
      worker('wrangler.toml', 'edgeflags', edgeDir),
      worker('control/wrangler.toml', 'edgeflags-control', controlDir),
    ],
  };
}
