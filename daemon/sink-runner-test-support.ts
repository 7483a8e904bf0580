/** What the sink runner's unit tests share: a silent logger, a row's insert event and the JSON record decoder. */
import { Writable } from "node:stream";
import type { ChangeEvent, StoredRecord } from "../connectors/contracts.ts";
import { createLogger } from "../runtime/logger.ts";
import { deserializeEvent } from "./event-json.ts";

export const silent = createLogger("silent", new Writable({ write: (_c, _e, cb) => cb() }) as never);

/** The insert of row `id` (named "row <id>") into pg's `public.<table>` at source position `change`. */
export function event(table: string, id: number, change = BigInt(id)): ChangeEvent {
  return {
    op: "c",
    key: { id },
    before: null,
    after: { id, name: `row ${id}` },
    schema: { source: "pg", database: "app", schema: "public", table, sourceKind: "postgres", columns: [], key: ["id"] },
    source: { connector: "postgres", name: "pg", db: "app", schema: "public", table, position: { commit: change, change }, txId: null, commitTimeMs: 1_700_000_000_000 + Number(change), snapshot: false },
  };
}

/** Decodes records written with serializeEvent (null for a tombstone). */
export const jsonDecoder = { decode: async (r: StoredRecord) => (r.value ? deserializeEvent(Buffer.from(r.value).toString()) : null) };

/** The runner options these tests share: JSON records, a halt on a failed row, quick retries, a silent log. */
export const runnerDefaults = { decoder: jsonDecoder, onError: "halt", retry: { initialMs: 1, maxMs: 5 }, logger: silent, owner: "test" } as const;
