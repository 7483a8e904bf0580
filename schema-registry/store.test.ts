import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { SluiceError } from "../connectors/errors.ts";
import { openFileStore } from "./file-backend.ts";
import { LocalRegistry } from "./local-registry.ts";
import { openMemoryStore } from "./log-store.ts";

const schema = (name: string) => JSON.stringify({ type: "record", name, fields: [{ name: "id", type: "long" }] });

let directory: string;
before(async () => {
  directory = await mkdtemp(join(tmpdir(), "sluice-store-"));
});
after(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe("schema store", () => {
  it("gives an identical schema the same id, across subjects and spellings", async () => {
    const registry = new LocalRegistry(await openMemoryStore());
    const id = await registry.register("a-value", schema("A"));
    assert.equal(await registry.register("a-value", `  ${schema("A")}\n`), id);
    assert.equal(await registry.register("b-value", { type: "record", name: "A", fields: [{ type: "long", name: "id" }] }), id);
    assert.deepEqual(await registry.listVersions("a-value"), [1], "no new version for the same schema");
    assert.notEqual(await registry.register("c-value", schema("B")), id);
  });

  it("never reuses an id, even after a permanent delete", async () => {
    const registry = new LocalRegistry(await openMemoryStore());
    const first = await registry.register("s", schema("A"));
    await registry.deleteSubject("s", false);
    await registry.deleteSubject("s", true);
    assert.equal(await registry.getLatest("s"), null);
    await assert.rejects(registry.getById(first), (error: unknown) => error instanceof SluiceError && error.code === "SCHEMA_NOT_FOUND");
    const second = await registry.register("s", schema("B"));
    assert.ok(second > first, `new schema got id ${second}, after ${first}`);
    const third = await registry.register("t", schema("C"));
    assert.ok(third > second);
    assert.equal(await registry.register("u", schema("A")), first, "the same schema keeps its id: the id still means that schema");
  });

  it("rejects a batch that breaks an invariant and leaves the state untouched", async () => {
    const store = await openMemoryStore();
    await store.apply([{ op: "register", subject: "s", version: 1, id: 1, schema: '"int"' }]);
    await assert.rejects(
      store.apply([
        { op: "register", subject: "s", version: 2, id: 2, schema: '"long"' },
        { op: "register", subject: "t", version: 1, id: 1, schema: '"string"' },
      ]),
      /already belongs to another schema/,
    );
    assert.deepEqual(
      (await store.versions("s", true)).map((record) => record.version),
      [1],
    );
    assert.equal(await store.nextId(), 2);
    await assert.rejects(store.apply([{ op: "hardDelete", subject: "s", version: 1 }]), /soft-deleted first/);
  });

  it("gives new schemas ids above those reserved for records whose schemas were lost (reserveIds)", async () => {
    const store = await openMemoryStore();
    await store.apply([{ op: "reserveIds", through: 7 }]);
    assert.equal(await store.nextId(), 8);
    const registry = new LocalRegistry(store);
    assert.equal(await registry.register("t-value", schema("A")), 8);
    await store.apply([{ op: "reserveIds", through: 3 }]);
    assert.equal(await store.nextId(), 9, "a lower reservation takes nothing back");
  });

  it("keeps everything across a reopen of the file store", async () => {
    const path = join(directory, "durable", "schemas.json");
    const first = new LocalRegistry(await openFileStore(path));
    const idA = await first.register("orders-value", schema("A"));
    const idB = await first.register("orders-value", { type: "record", name: "A", fields: [{ name: "id", type: "long" }, { name: "x", type: ["null", "int"], default: null }] });
    await first.register("gone-value", schema("G"));
    await first.deleteSubject("gone-value", false);
    await first.deleteSubject("gone-value", true);
    await first.setConfig("orders-value", "FULL_TRANSITIVE");
    await first.setConfig(null, "FORWARD");
    await first.setMode("other", "READONLY", false);
    await first.deleteVersion("orders-value", 1, false);
    await first.close();

    const reopened = new LocalRegistry(await openFileStore(path));
    assert.deepEqual(await reopened.listSubjects(), ["orders-value"]);
    assert.deepEqual(await reopened.versionsOf("orders-value", true), [1, 2]);
    assert.deepEqual(await reopened.listVersions("orders-value"), [2]);
    assert.equal((await reopened.getLatest("orders-value"))?.id, idB);
    assert.equal(await reopened.getById(idA), await first.getById(idA));
    assert.equal(await reopened.getCompatibilityLevel("orders-value"), "FULL_TRANSITIVE");
    assert.equal(await reopened.getConfig(null, false), "FORWARD");
    assert.equal(await reopened.getMode("other", false), "READONLY");
    const next = await reopened.register("new-value", schema("N"));
    assert.ok(next > idB + 1, "ids continue after the permanently deleted one");
    await reopened.close();
    assert.deepEqual(await readdir(join(directory, "durable")), ["schemas.json"], "no temporary file is left behind");
  });

  it("reports a corrupt store file instead of starting empty", async () => {
    const path = join(directory, "corrupt.json");
    await writeFile(path, "{ not json");
    await assert.rejects(openFileStore(path), (error: unknown) => error instanceof SluiceError && error.code === "SCHEMA_STORE_CORRUPT");
    await writeFile(path, JSON.stringify({ format: "something-else", version: 1, mutations: [] }));
    await assert.rejects(openFileStore(path), /not a sluice-schema-store file/);
  });

  it("writes the file as a readable JSON log of mutations", async () => {
    const path = join(directory, "log.json");
    const store = await openFileStore(path);
    await store.apply([{ op: "setCompatibility", subject: null, level: "NONE" }]);
    const content = JSON.parse(await readFile(path, "utf8"));
    assert.deepEqual(content, { format: "sluice-schema-store", version: 1, mutations: [{ op: "setCompatibility", subject: null, level: "NONE" }] });
  });
});
