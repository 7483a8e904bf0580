/**
 * Elasticsearch's client API (the class its `Client` extends) with each of its 91 methods and
 * namespaces loaded from the client's own module when first used. The client's api/index.js imports
 * all of them at once: ~1.5 MiB of a heap at rest for the ~15 calls a sink makes (measured: the
 * index 1.75 MiB, the modules of those calls 0.27 MiB), kept for good in every Elasticsearch sink
 * thread, where it is old generation the memory budget gives the sink's batches (config/memory.ts).
 * transport-imports.ts makes the client's build import this module instead of its index.
 *
 * Same behaviour as the index: a method is the module's function, on the prototype (its `this` is
 * the client); a namespace is made once per client from the module's class with the client's
 * transport. Names and kinds come from the API's files (api/api/<snake_case>.js is <camelCase>; a
 * class is a namespace), checked against the index by client-api.test.ts.
 */
import { readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The ES module build of the client, as `import "@elastic/elasticsearch"` finds it. */
export const CLIENT_BUILD = dirname(fileURLToPath(import.meta.resolve("@elastic/elasticsearch")));
const API_FILES = join(CLIENT_BUILD, "api", "api");
const requireApi = createRequire(join(API_FILES, "index.js"));

/** The name the client gives the API of a file: delete_by_query.js -> deleteByQuery. */
export function apiName(file: string): string {
  return file.slice(0, -".js".length).replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

type ApiExport = ((this: unknown, ...args: unknown[]) => unknown) | (new (transport: unknown) => object);

export default class LazyApi {}

for (const file of readdirSync(API_FILES)) {
  if (!file.endsWith(".js")) continue;
  const name = apiName(file);
  Object.defineProperty(LazyApi.prototype, name, {
    configurable: true,
    get(this: { transport: unknown }): unknown {
      const exported = (requireApi(`./${file}`) as { default: ApiExport }).default;
      // A method (an async function: no prototype) stays on the prototype from now on.
      if (typeof exported.prototype !== "object") {
        Object.defineProperty(LazyApi.prototype, name, { value: exported, writable: true, enumerable: true, configurable: true });
        return exported;
      }
      const namespace = new (exported as new (transport: unknown) => object)(this.transport);
      Object.defineProperty(this, name, { value: namespace, configurable: true });
      return namespace;
    },
  });
}
