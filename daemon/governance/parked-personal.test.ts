import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { ChangeEvent, TableSchema } from "../../connectors/contracts.ts";
import { UNCHANGED } from "../../connectors/contracts.ts";
import { EmbeddedTopicLog } from "../../connectors/embedded/embedded-log.ts";
import { SluiceError } from "../../connectors/errors.ts";
import type { SluiceConfig } from "../../config/schema.ts";
import { createLogger } from "../../runtime/logger.ts";
import { deserializeEventBytes, serializeEventBytes } from "../event-json.ts";
import { NULLED_HEADER, ParkedPersonalData, SEALED_HEADER } from "./parked-personal.ts";
import { lazyKeyStore } from "./personal-data.ts";
import type { SubjectKeyStore } from "./subject-keys.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-parked-personal-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const logger = createLogger("silent");
const masterFile = join(dir, "master.key");
writeFileSync(masterFile, "ab".repeat(32));

const schema: TableSchema = {
  source: "pg",
  database: "db",
  schema: "app",
  table: "customers",
  sourceKind: "postgres",
  key: ["id"],
  columns: [
    { name: "id", dbType: "integer", nullable: false, primaryKeyIndex: 1 },
    { name: "customer_id", dbType: "bigint", nullable: true },
    { name: "email", dbType: "text", nullable: true },
    { name: "phone", dbType: "bigint", nullable: true },
    { name: "photo", dbType: "bytea", nullable: true },
    { name: "city", dbType: "text", nullable: true },
  ],
};
const governance = { tables: { "app.customers": { checks: [], transforms: {}, personal: { subject: "customer_id", columns: ["email", "phone", "photo"] } } } };
const config = { name: "dep", personal_data: { master_key_file: masterFile, previous_master_key_files: [] }, sources: [{ name: "pg", governance }] } as unknown as SluiceConfig;

function change(after: Record<string, unknown> | null, before: Record<string, unknown> | null = null): ChangeEvent {
  return {
    op: after === null ? "d" : before ? "u" : "c",
    key: { id: (after ?? before)!["id"] as number },
    before,
    after,
    schema,
    source: { connector: "postgres", name: "pg", db: "db", schema: "app", table: "customers", position: { commit: 1n, change: 1n }, txId: null, commitTimeMs: 0, snapshot: false },
  } as unknown as ChangeEvent;
}

/** Through the parking topic's JSON, as capture writes and reads it. */
const stored = (event: ChangeEvent) => deserializeEventBytes(serializeEventBytes(event));

async function setup(name: string) {
  const log = await EmbeddedTopicLog.open({ path: join(dir, name), logger, maintenanceIntervalMs: 0 });
  const keys = lazyKeyStore(config, log, { create: true });
  return { log, keys, parked: new ParkedPersonalData({ name: "pg", governance } as never, keys) };
}

test("a parked change's personal values are sealed with their subject's key and open as captured (types kept); the key, subject and other columns stay", async () => {
  const { log, parked } = await setup("roundtrip.db");
  try {
    const captured = change(
      { id: 1, customer_id: 42n, email: "ann@example.com", phone: 33612345678n, photo: new Uint8Array([1, 2, 255]), city: "Lyon" },
      { id: 1, customer_id: 42n, email: "old@example.com", phone: null, photo: UNCHANGED, city: "Lyon" },
    );
    const { event, headers } = await parked.seal(captured);
    const text = serializeEventBytes(event).toString();
    for (const clear of ["ann@example.com", "old@example.com", "33612345678"]) assert.ok(!text.includes(clear), `${clear} in clear`);
    assert.match(String(event.after!["email"]), /^sluice-enc:v2:/);
    assert.equal(event.after!["phone"], "sluice-enc:ref:email");
    assert.equal(event.after!["city"], "Lyon");
    assert.equal(event.after!["customer_id"], 42n);
    assert.equal(event.before!["phone"], null);
    assert.equal(event.before!["photo"], UNCHANGED);
    assert.deepEqual(JSON.parse(Buffer.from(headers[SEALED_HEADER]!).toString()), ["email", "phone", "photo"]);
    assert.equal(headers[NULLED_HEADER], undefined);
    const opened = await parked.open(stored(event), headers);
    assert.deepEqual(opened.after, captured.after);
    assert.deepEqual(opened.before, captured.before);
  } finally {
    await log.close();
  }
});

test("records written before sealing (no header) read as they are, even a text that looks sealed", async () => {
  const { log, parked } = await setup("plain.db");
  try {
    const plain = change({ id: 1, customer_id: 42n, email: "sluice-enc:v2:looks.like-it", phone: 5n, photo: null, city: null });
    assert.deepEqual(await parked.open(stored(plain), undefined), stored(plain));
    assert.deepEqual(await parked.open(stored(plain), {}), stored(plain));
  } finally {
    await log.close();
  }
});

test("after the subject's key is destroyed its parked values open as null (also once the subject has a new key); another subject's open", async () => {
  const { log, keys, parked } = await setup("forgotten.db");
  try {
    const ann = await parked.seal(change({ id: 1, customer_id: 42n, email: "ann@example.com", phone: 1n, photo: null, city: "Lyon" }));
    const bob = await parked.seal(change({ id: 2, customer_id: 7n, email: "bob@example.com", phone: null, photo: null, city: "Nice" }));
    const store: SubjectKeyStore = await keys();
    await store.destroy("pg", "42");
    await parked.refresh();
    const erased = await parked.open(stored(ann.event), ann.headers);
    assert.deepEqual(erased.after, { id: 1, customer_id: 42n, email: null, phone: null, photo: null, city: "Lyon" });
    assert.equal((await parked.open(stored(bob.event), bob.headers)).after!["email"], "bob@example.com");
    // The subject changes again: a new key, which does not open the old values.
    await store.keyFor("pg", "42");
    assert.equal((await parked.open(stored(ann.event), ann.headers)).after!["email"], null);
  } finally {
    await log.close();
  }
});

test("a value with no key to seal it is not written: null, and the header says which column and why; a key store that is unavailable fails the write instead", async () => {
  const { log, parked } = await setup("nulled.db");
  try {
    const none = await parked.seal(change({ id: 1, customer_id: null, email: "nobody@example.com", phone: 3n, photo: null, city: "Lyon" }));
    assert.equal(none.event.after!["email"], null);
    assert.equal(none.event.after!["phone"], null);
    assert.equal(none.headers[SEALED_HEADER], undefined);
    assert.match(Buffer.from(none.headers[NULLED_HEADER]!).toString(), /^email: the row has no subject \(customer_id is null\); phone: the row has no subject/);

    const invalid = new ParkedPersonalData({ name: "pg", governance } as never, async () => {
      throw new SluiceError("key k1 is wrapped by a master key this process was not given", { code: "GOVERNANCE_KEY_INVALID" });
    });
    const refused = await invalid.seal(change({ id: 2, customer_id: 9n, email: "eve@example.com", phone: null, photo: null, city: null }));
    assert.equal(refused.event.after!["email"], null);
    assert.match(Buffer.from(refused.headers[NULLED_HEADER]!).toString(), /^email: the subject's key cannot be used: key k1 is wrapped/);

    const down = new ParkedPersonalData({ name: "pg", governance } as never, async () => {
      throw new SluiceError("topic log unavailable", { code: "TOPIC_LOG_UNAVAILABLE" });
    });
    await assert.rejects(down.seal(change({ id: 3, customer_id: 9n, email: "eve@example.com", phone: null, photo: null, city: null })), /topic log unavailable/);
    // A table without personal columns: untouched.
    const other = { ...change({ id: 4, customer_id: 1n, email: "x@example.com", phone: null, photo: null, city: null }), schema: { ...schema, table: "orders" } };
    assert.deepEqual(await parked.seal(other), { event: other, headers: {} });
  } finally {
    await log.close();
  }
});

test("a key destroyed by another process (sluice forget) opens nothing once refresh read the key topic, though capture's store still held it", async () => {
  const { log, parked } = await setup("elsewhere.db");
  try {
    const ann = await parked.seal(change({ id: 1, customer_id: 42n, email: "ann@example.com", phone: null, photo: null, city: null }));
    assert.equal((await parked.open(stored(ann.event), ann.headers)).after!["email"], "ann@example.com");
    const forgetting = await lazyKeyStore(config, log, { create: false })();
    await forgetting.destroy("pg", "42");
    assert.equal((await parked.open(stored(ann.event), ann.headers)).after!["email"], "ann@example.com", "capture's store has not read the tombstone yet");
    await parked.refresh();
    assert.equal((await parked.open(stored(ann.event), ann.headers)).after!["email"], null);
  } finally {
    await log.close();
  }
});
