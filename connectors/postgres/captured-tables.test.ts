import { test } from "node:test";
import assert from "node:assert/strict";
import pino from "pino";
import { CapturedTables } from "./captured-tables.ts";
import type { RelationMessage } from "./protocol/pgoutput.ts";

const logger = pino({ level: "silent" });

test("a rename's request that fails after fromRelation failed on a catalog read is no unhandled rejection (it ended the daemon)", async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on("unhandledRejection", onUnhandled);
  try {
    let told = 0;
    const captured = new CapturedTables({
      sourceName: "pg",
      database: "shop",
      keyColumns: {},
      matches: () => true,
      types: {} as never,
      logger,
      previous: new Map([[16384, { schema: "public", table: "orders", columns: [{ number: 1, name: "id", typeOid: 23, typeModifier: -1 }] }]]),
      // The request fails after its retries, later than the catalog read below.
      onRenamed: () => {
        told++;
        return new Promise((_resolve, reject) => setTimeout(() => reject(new Error("SNAPSHOT_REQUEST_FAILED")), 20));
      },
    });
    const catalogLost = { query: async () => Promise.reject(new Error("Connection terminated unexpectedly")) };
    const message: RelationMessage = { tag: "relation", relationId: 16384, namespace: "public", name: "orders_v2", replicaIdentity: "d", columns: [{ isKey: true, name: "id", typeOid: 23, typeModifier: -1 }] };
    await assert.rejects(captured.fromRelation(catalogLost, message, { commit: 100n, change: 100n }), /Connection terminated/);
    assert.equal(told, 1, "the rename was told before the catalog read failed");
    for (let i = 0; i < 10; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(unhandled, []);
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
});
