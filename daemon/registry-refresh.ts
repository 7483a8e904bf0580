/**
 * The built-in registry is loaded from the topic log's journal when a process starts. When
 * capture and sinks run in separate processes, a sink process then meets schema ids registered
 * later by the capture: it reads the journal again when asked for an id it does not know (at most
 * once a second), instead of failing the record as undecodable.
 */
import { RegistryError } from "../schema-registry/index.ts";
import type { SchemaRegistry } from "../schema-registry/index.ts";

const MIN_RELOAD_INTERVAL_MS = 1_000;

export function reloadingOnMiss(initial: Pick<SchemaRegistry, "getById">, reopen: () => Promise<Pick<SchemaRegistry, "getById">>): Pick<SchemaRegistry, "getById"> {
  let current = initial;
  let reloadedAt = 0;
  let reloading: Promise<void> | null = null;
  return {
    async getById(id: number): Promise<string> {
      try {
        return await current.getById(id);
      } catch (error) {
        if (!(error instanceof RegistryError) || error.kind !== "SCHEMA_NOT_FOUND") throw error;
        const wait = Math.max(0, reloadedAt + MIN_RELOAD_INTERVAL_MS - Date.now());
        reloading ??= new Promise((resolve) => setTimeout(resolve, wait))
          .then(async () => {
            current = await reopen();
            reloadedAt = Date.now();
          })
          .finally(() => (reloading = null));
        await reloading;
        return current.getById(id);
      }
    },
  };
}
