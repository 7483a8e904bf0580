import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeResume } from "../common/incremental-snapshot-state.ts";
import type { SnapshotTask } from "../common/incremental-snapshot-state.ts";
import type { Position } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import { newSource, sourceConfig } from "./int-test-support.ts";
import { RECREATED_PREFIX } from "./stream-decoder.ts";

/** What a rename told from a Relation message does, without a server: the catalog's statements are recorded. */
interface RenameHost {
  catalog: { query: (text: string) => Promise<{ rows: { lsn: string }[] }> } | null;
  takeUpRenamed(from: string, to: string, at: Position | null): Promise<void>;
}

const at: Position = { commit: 0x4f00n, change: 0x4f00n };
const renamedTask = (readAbove: string): SnapshotTask => ({
  id: "table-renamed@0/4F00/public.orders_v2",
  table: "public.orders_v2",
  where: null,
  lastKey: null,
  rowsDone: 0,
  rowsEstimated: null,
  resetVersion: null,
  requestedAtMs: 1,
  startedAtMs: null,
  origin: "table-renamed",
  readAbove,
});

function host(source: ReturnType<typeof newSource>, statements: string[]): RenameHost {
  const renames = source as unknown as RenameHost;
  renames.catalog = {
    query: async (text: string) => {
      statements.push(text);
      return { rows: [{ lsn: String(0x5000 + statements.length) }] };
    },
  };
  return renames;
}

test("a rename told again once its request is queued (a reconnect or a restart before a checkpoint past it) writes no new truncate: it would remove what the request read below it", async () => {
  const source = newSource(sourceConfig({ tables: ["public.*"] }));
  const statements: string[] = [];
  // The checkpoint resumed from carries the request: told again from the Relation message, nothing is emptied again.
  (source as unknown as { online: { restore(from: unknown): void } }).online.restore({ source: source.name, position: { commit: 0x4e00n, change: 0x4e00n, resume: encodeResume(undefined, [renamedTask(String(0x5001))]) } });
  // No engine runs here, so the request itself is refused as "not streaming": only the statements matter.
  await host(source, statements).takeUpRenamed("public.orders", "public.orders_v2", at).catch(() => undefined);
  assert.deepEqual(statements.filter((s) => s.includes(RECREATED_PREFIX)), []);
  (source as unknown as RenameHost).catalog = null;
  await source.close();
});

test("a rename whose request failed is told again without a second truncate, and the failure names the source", async () => {
  const source = newSource(sourceConfig({ tables: ["public.*"] }));
  const statements: string[] = [];
  const renames = host(source, statements);
  const failure = await renames.takeUpRenamed("public.orders", "public.orders_v2", at).then(
    () => assert.fail("the request cannot be made without an engine"),
    (error: unknown) => error,
  );
  assert.ok(failure instanceof SluiceError);
  assert.equal(failure.code, "SNAPSHOT_REQUEST_FAILED");
  assert.equal(failure.context["source"], source.name, "the failure carries the source's context");
  assert.equal(statements.filter((s) => s.includes(RECREATED_PREFIX)).length, 1);
  await renames.takeUpRenamed("public.orders", "public.orders_v2", at).catch(() => undefined);
  assert.equal(statements.filter((s) => s.includes(RECREATED_PREFIX)).length, 1, "told again after the stream failed for it: the first truncate is reused");
  renames.catalog = null;
  await source.close();
});
