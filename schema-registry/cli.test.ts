import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { runSchemaCommand } from "./cli.ts";
import { LocalRegistry } from "./local-registry.ts";
import { openMemoryStore } from "./log-store.ts";
import { RemoteRegistry } from "./remote-registry.ts";
import type { SchemaRegistry } from "./registry.ts";

const V1 = { type: "record", name: "R", fields: [{ name: "a", type: "int" }] };
const V2 = { type: "record", name: "R", fields: [{ name: "a", type: "int" }, { name: "b", type: "string", default: "" }] };

async function run(registry: SchemaRegistry, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await runSchemaCommand(args, registry, { stdout: (text) => (stdout += text), stderr: (text) => (stderr += text) });
  return { code, stdout, stderr };
}

let directory: string;
let registry: LocalRegistry;
before(async () => {
  directory = await mkdtemp(join(tmpdir(), "sluice-cli-"));
  registry = new LocalRegistry(await openMemoryStore());
  await registry.register("orders-value", V1);
  await registry.register("orders-value", V2);
  await registry.register("users-value", '"string"');
});
after(() => rm(directory, { recursive: true, force: true }));

describe("sluice schema", () => {
  it("lists subjects", async () => {
    assert.deepEqual(await run(registry, "schema", "list"), { code: 0, stdout: "orders-value\nusers-value\n", stderr: "" });
    assert.equal((await run(registry, "list")).code, 0, "the leading `schema` is optional");
  });

  it("shows the latest or a given version", async () => {
    const latest = await run(registry, "show", "orders-value");
    assert.equal(latest.code, 0);
    assert.match(latest.stdout, /^subject: orders-value\nversion: 2\nid: 2\ncompatibility: BACKWARD\n\{\n {2}"type": "record"/);
    const first = await run(registry, "show", "orders-value", "1");
    assert.match(first.stdout, /version: 1\nid: 1\n/);
    assert.deepEqual(await run(registry, "show", "orders-value", "9"), { code: 1, stdout: "", stderr: 'subject "orders-value" has no version 9\n' });
    assert.equal((await run(registry, "show", "nobody")).code, 1);
    assert.equal((await run(registry, "show", "orders-value", "x")).code, 2);
    // Found on a live deployment: 20 digits were rounded ("has no version 100000000000000000000"), "1e0" and "0x1" read as 1.
    for (const version of ["99999999999999999999", "2147483648", "1e0", "0x1", " 1", "1.0"]) {
      const answer = await run(registry, "show", "orders-value", version);
      assert.equal(answer.code, 2, version);
      assert.match(answer.stderr, new RegExp(`VERSION must be a whole number from 1 to 2147483647 or "latest", not "${version.replace(".", "\\.")}"`), version);
    }
    assert.equal((await run(registry, "show", "orders-value", "2147483647")).code, 1, "the largest version id is a version (none here)");
  });

  it("checks a schema file: 0 compatible, 1 incompatible with reasons, 2 usage errors", async () => {
    const compatible = join(directory, "compatible.avsc");
    const incompatible = join(directory, "incompatible.avsc");
    const invalid = join(directory, "invalid.avsc");
    await writeFile(compatible, JSON.stringify({ ...V2, fields: [...V2.fields, { name: "c", type: "int", default: 0 }] }));
    await writeFile(incompatible, JSON.stringify({ type: "record", name: "R", fields: [{ name: "a", type: "string" }] }));
    await writeFile(invalid, '{"type": "record"');

    const ok = await run(registry, "schema", "check", "orders-value", compatible);
    assert.equal(ok.code, 0);
    assert.match(ok.stdout, /^compatible: .* under orders-value \(compatibility BACKWARD\)/);

    const bad = await run(registry, "schema", "check", "orders-value", incompatible);
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /incompatible: .*\n {2}- field `a`: writer type int cannot be read as string \(TYPE_MISMATCH at \/fields\/0\/type/);

    assert.equal((await run(registry, "schema", "check", "orders-value", invalid)).code, 2);
    assert.equal((await run(registry, "schema", "check", "orders-value", join(directory, "missing.avsc"))).code, 2);
    assert.equal((await run(registry, "schema", "check", "orders-value")).code, 2);
    assert.equal((await run(registry, "schema", "frobnicate")).code, 2);
    const none = await run(registry, "schema");
    assert.deepEqual([none.code, none.stdout], [2, ""], "a usage error prints nothing on stdout");
    assert.match(none.stderr, /^error: give a schema command: list, show, check or check-migration\nusage:/);
    const help = await run(registry, "schema", "--help");
    assert.deepEqual([help.code, help.stderr], [0, ""]);
    assert.match(help.stdout, /^usage:/);
  });

  it("exits 3 when the registry cannot answer", async () => {
    const unreachable = new RemoteRegistry({ url: "http://127.0.0.1:9", timeoutMs: 1000 });
    const result = await run(unreachable, "schema", "list");
    assert.equal(result.code, 3);
    assert.match(result.stderr, /unreachable/);
  });
});
