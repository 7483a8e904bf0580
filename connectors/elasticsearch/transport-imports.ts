/**
 * The parts of undici and @opentelemetry/core Elasticsearch's client uses, without the rest of them.
 * @elastic/transport takes `Pool` and `buildConnector` from undici (its UndiciConnection) and
 * `suppressTracing` from @opentelemetry/core, but importing the packages loads all of them: undici's
 * fetch, WebSocket, caches, mock and proxy agents, and OpenTelemetry's SDK core with every semantic
 * convention's name, ~4 MiB of a heap at rest, kept for good (measured: the client with its imports
 * 9.9 MiB, with these 7.9 MiB less the OpenTelemetry part). In a sink thread that is old generation the
 * memory budget gives the sink's batches (config/memory.ts), and the collector runs more often the
 * less room is left there. `importLessForElasticsearch` makes @elastic/transport's imports of the two
 * packages resolve to this module in the calling thread: the same modules of the same packages, fewer of them.
 * It also makes the client's import of its whole API resolve to client-api.ts, which loads each API
 * module of the client when it is first used.
 */
import { createRequire, registerHooks } from "node:module";

// The packages as @elastic/transport finds them (its own dependencies, wherever npm put them).
const requireAsTransport = createRequire(import.meta.resolve("@elastic/transport"));

/** undici's Dispatcher gets its request API (request, stream, pipeline, connect, upgrade) when undici's index loads; the pool's requests need it. */
const Dispatcher = requireAsTransport("undici/lib/dispatcher/dispatcher") as { prototype: object };
Object.assign(Dispatcher.prototype, requireAsTransport("undici/lib/api"));

export const Pool: unknown = requireAsTransport("undici/lib/dispatcher/pool");
export const buildConnector: unknown = requireAsTransport("undici/lib/core/connect");
export const { suppressTracing } = requireAsTransport("@opentelemetry/core/build/src/trace/suppress-tracing.js") as { suppressTracing: unknown };

const REPLACED = new Set(["undici", "@opentelemetry/core"]);
/** The client's ES module build (what `import "@elastic/elasticsearch"` loads) imports its API as ./api/index.js from client.js. */
const CLIENT_MODULE = new URL("client.js", import.meta.resolve("@elastic/elasticsearch")).href;
const LAZY_API = new URL("client-api.ts", import.meta.url).href;
let registered = false;

/** From now on in this thread, @elastic/transport imports undici and @opentelemetry/core as this module, and the client its API as client-api.ts. Modules loaded already keep what they have. */
export function importLessForElasticsearch(): void {
  if (registered) return;
  registered = true;
  const self = import.meta.url;
  registerHooks({
    resolve(specifier, context, next) {
      if (REPLACED.has(specifier) && context.parentURL?.includes("/@elastic/transport/") === true) return { url: self, shortCircuit: true };
      if (specifier === "./api/index.js" && context.parentURL === CLIENT_MODULE) return { url: LAZY_API, shortCircuit: true };
      return next(specifier, context);
    },
  });
}
