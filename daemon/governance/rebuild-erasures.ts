/**
 * Erasures (`sluice forget`) made while a sink is rebuilt (docs/governance.md, "Erasure during a
 * rebuild"). A rebuild decrypts a subject's values with its key and writes them a moment later; an
 * erasure in between (the key dropped, the subject's rows nulled in every generation) would find
 * its erase undone in the new generation, and the swap would make that live. So the rebuild
 * watches its key store from before its first record and, after each batch it writes and once more
 * just before it swaps (after reading the key topic to its end), erases in the sink the subjects
 * whose keys were destroyed meanwhile. An erasure whose tombstone that last read does not see
 * erases after every write of the rebuild, so it reaches the new generation itself.
 */
import type { SinkConfig, SluiceConfig } from "../../config/schema.ts";
import type { ErasureRequest } from "../../connectors/sinks/contract.ts";
import type { Logger } from "../../runtime/logger.ts";
import type { RebuildErasures } from "../rebuild.ts";
import { erasureRequests } from "./erasure.ts";
import type { PersonalDataDecryptor } from "./personal-data.ts";

export interface WatchedErasures extends RebuildErasures {
  /** Stops watching the key store (after the rebuild, whatever its outcome). */
  close(): void;
}

/**
 * The erasures a rebuild of `sink` re-applies, watched from now on in the key store of `personal`
 * (the decryptor of the rebuild's decoder: the keys it decrypts with); null when the sink holds no
 * personal column of any source. `erase` runs one subject's requests on the sink.
 */
export async function watchRebuildErasures(
  config: SluiceConfig,
  sink: SinkConfig,
  personal: PersonalDataDecryptor | null,
  erase: (requests: readonly ErasureRequest[]) => Promise<unknown>,
  logger: Logger,
): Promise<WatchedErasures | null> {
  if (personal === null || !config.sources.some((source) => erasureRequests(config, sink, source.name, "").length > 0)) return null;
  const keys = await personal.store();
  const destroyed = keys.watchDestroyed();
  return {
    async eraseDestroyed(final: boolean): Promise<void> {
      // Before the swap: every tombstone written so far, also those of erasures another process made.
      if (final) await keys.catchUp();
      const subjects = destroyed.take();
      let erased = 0;
      for (const { source, subject } of subjects) {
        const requests = erasureRequests(config, sink, source, subject);
        if (requests.length === 0) continue;
        await erase(requests);
        erased += 1;
      }
      if (erased > 0) logger.info({ sink: sink.name, subjects: erased }, "rebuild: subjects forgotten while it ran erased again, in its new tables too");
    },
    close: () => destroyed.close(),
  };
}
