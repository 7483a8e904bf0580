import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { EmbeddedTopicLog } from "../../connectors/embedded/embedded-log.ts";
import { SluiceError } from "../../connectors/errors.ts";
import { createLogger } from "../../runtime/logger.ts";
import { dataKeyId, decryptValue, encryptedBy, encryptValue, isEncrypted, isSealed, MasterKey, openValues, referenceTo, sealValues, SubjectKeyStore, writeBase64 } from "./subject-keys.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-subject-keys-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const logger = createLogger("silent");
const TOPIC = "dep.sluice.subject-keys";

async function openLog(name: string): Promise<EmbeddedTopicLog> {
  return EmbeddedTopicLog.open({ path: join(dir, name), logger, maintenanceIntervalMs: 0 });
}

test("a master key file holds 32 bytes as hex or base64; anything else is refused with a clear error", () => {
  const hex = join(dir, "master.hex");
  writeFileSync(hex, `${"ab".repeat(32)}\n`);
  const b64 = join(dir, "master.b64");
  writeFileSync(b64, Buffer.alloc(32, 0xab).toString("base64"));
  assert.deepEqual(MasterKey.fromFile(hex).id, MasterKey.fromFile(b64).id);
  const short = join(dir, "short");
  writeFileSync(short, "abcd");
  assert.throws(() => MasterKey.fromFile(short), (e: unknown) => e instanceof SluiceError && e.code === "GOVERNANCE_KEY_INVALID" && /32 bytes/.test(e.message));
  assert.throws(() => MasterKey.fromFile(join(dir, "missing")), /cannot read the master key file/);
});

test("a master key file that is a FIFO, a device or too large is refused, not waited on or read without end", () => {
  const fifo = join(dir, "master.fifo");
  assert.equal(spawnSync("mkfifo", [fifo]).status, 0);
  // In a child process: before, the read waited for a writer (the daemon's main thread with it), and the test would too.
  const script = `const { MasterKey } = await import(${JSON.stringify(new URL("./subject-keys.ts", import.meta.url).href)}); try { MasterKey.fromFile(process.argv[1]); console.log("read"); } catch (error) { console.log(error.message); }`;
  const child = spawnSync(process.execPath, ["--input-type=module", "-e", script, fifo], { timeout: 30_000, encoding: "utf8" });
  assert.equal(child.signal, null, `MasterKey.fromFile did not return (killed by ${String(child.signal)}): it waited on the FIFO`);
  assert.match(child.stdout, /cannot read the master key file .*master\.fifo: not a regular file \(a FIFO\)/);
  assert.throws(() => MasterKey.fromFile("/dev/zero"), /cannot read the master key file \/dev\/zero: not a regular file \(a device\)/);
  const large = join(dir, "master.large");
  writeFileSync(large, `${"ab".repeat(32)}\n${" ".repeat(64 * 1024)}`);
  assert.throws(() => MasterKey.fromFile(large), /cannot read the master key file .*master\.large: .*more than the 64 KiB such a file may hold/);
});

test("values: AES-256-GCM round trip, bound to their context, tampering detected", () => {
  const key = Buffer.alloc(32, 7);
  const text = encryptValue(Buffer.from("ann@example.com"), key, "app.customers.email", "42");
  assert.ok(isEncrypted(text));
  assert.ok(!text.includes("ann@"));
  assert.deepEqual(encryptedBy(text), { subject: "42", keyId: dataKeyId(key).toString("hex") }, "the value names its subject and key");
  assert.notEqual(encryptValue(Buffer.from("ann@example.com"), key, "app.customers.email", "42"), text, "a fresh IV per value");
  assert.equal(decryptValue(text, key, "app.customers.email").toString(), "ann@example.com");
  assert.throws(() => decryptValue(text, key, "app.customers.phone"), /integrity check/);
  assert.throws(() => decryptValue(text, Buffer.alloc(32, 8), "app.customers.email"), /integrity check/);
  // Naming another subject in the text does not make its value readable with that subject's key, nor with its own.
  const renamed = text.replace(Buffer.from("42").toString("base64url"), Buffer.from("43").toString("base64url"));
  assert.equal(encryptedBy(renamed)?.subject, "43");
  assert.throws(() => decryptValue(renamed, key, "app.customers.email"), /integrity check/);
  assert.equal(encryptedBy("plain text"), null);
  assert.equal(decryptValue(encryptValue(Buffer.alloc(0), key, "c", "s"), key, "c").length, 0, "an empty value round-trips");
});

test("sealed row values: the personal values of a row in one AES-256-GCM operation, bound to table and subject", () => {
  const key = Buffer.alloc(32, 7);
  const values = { email: "ann@example.com", phone: "33612345678", constructor: "x" };
  const text = sealValues(values, key, "app.customers", "42");
  assert.ok(isEncrypted(text) && isSealed(text));
  assert.ok(!text.includes("ann@") && !text.includes("email"), "neither the values nor the column names are in clear");
  assert.deepEqual(encryptedBy(text), { subject: "42", keyId: dataKeyId(key).toString("hex") });
  assert.notEqual(sealValues(values, key, "app.customers", "42"), text, "a fresh IV per operation");
  assert.deepEqual({ ...openValues(text, key, "app.customers") }, values);
  assert.throws(() => openValues(text, key, "app.orders"), /integrity check/, "bound to its table");
  assert.throws(() => openValues(text, Buffer.alloc(32, 8), "app.customers"), /integrity check/);
  const renamed = text.replace(Buffer.from("42").toString("base64url"), Buffer.from("43").toString("base64url"));
  assert.throws(() => openValues(renamed, key, "app.customers"), /integrity check/, "bound to its subject");
  const reference = referenceTo("email");
  assert.ok(isEncrypted(reference) && !isSealed(reference));
  assert.equal(encryptedBy(reference), null, "a reference names no subject, key or value");
  assert.throws(() => openValues(encryptValue(Buffer.from("a"), key, "app.customers", "42"), key, "app.customers"), /not values sealed/);
});

test("writeBase64 writes what Buffer's base64 gives, for every length's padding, at an offset", () => {
  const bytes = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 151 + 7) % 256));
  for (let length = 0; length <= 70; length++) {
    const into = Buffer.alloc(8 + 4 * Math.ceil(length / 3), 0x2e);
    const end = writeBase64(bytes, 5, 5 + length, into, 8);
    assert.equal(end, into.length);
    assert.equal(into.toString("latin1", 8, end), bytes.toString("base64", 5, 5 + length), `length ${length}`);
    assert.equal(into.toString("latin1", 0, 8), "........");
  }
});

test("subject keys: created once and durably, read by another reader of the log, destroyed for good", async () => {
  const master = MasterKey.generate();
  const log = await openLog("keys.db");
  try {
    const store = await SubjectKeyStore.open(log, TOPIC, master);
    const ann = await store.keyFor("pg", "42");
    assert.deepEqual(await store.keyFor("pg", "42"), ann, "one key per subject");
    const bob = await store.keyFor("pg", "43");
    assert.notDeepEqual(bob, ann);
    assert.equal(await store.keyIfKnown("mysql", "42"), null, "subjects are per source");

    // Another reader of the same log (a sink, a restarted daemon) sees the same keys.
    const other = await SubjectKeyStore.open(log, TOPIC, master);
    assert.deepEqual(await other.keyIfKnown("pg", "42"), ann);
    assert.equal(other.size, 2);

    const ciphertext = encryptValue(Buffer.from("secret"), ann, "c", "42");
    assert.equal(await store.destroy("pg", "42"), true);
    assert.equal(await store.destroy("pg", "42"), false, "destroying again is harmless (a re-run)");
    await other.refresh();
    assert.equal(await other.keyIfKnown("pg", "42"), null, "the destroyed key is gone for every reader");
    assert.deepEqual(await other.keyIfKnown("pg", "43"), bob, "other subjects are untouched");
    // A new key for the subject does not open its old values.
    const fresh = await store.keyFor("pg", "42");
    assert.throws(() => decryptValue(ciphertext, fresh, "c"), /integrity check/);
  } finally {
    await log.close();
  }
});

test("master key rotation: every key rewrapped, re-runnable; afterwards the old master key is not needed", async () => {
  const oldMaster = MasterKey.generate();
  const newMaster = MasterKey.generate();
  const log = await openLog("rotation.db");
  try {
    const before = await SubjectKeyStore.open(log, TOPIC, oldMaster);
    const keys = await Promise.all(["1", "2", "3"].map(async (s) => [s, await before.keyFor("pg", s)] as const));
    await before.destroy("pg", "3");

    const withoutOld = await SubjectKeyStore.open(log, TOPIC, newMaster);
    await assert.rejects(() => withoutOld.keyIfKnown("pg", "1"), /wrapped by master key .* give the previous master key/);

    const rotating = await SubjectKeyStore.open(log, TOPIC, newMaster, { previous: [oldMaster] });
    assert.equal(await rotating.rewrapAll(), 2);
    assert.equal(await rotating.rewrapAll(), 0, "a second run has nothing left to do");

    const after = await SubjectKeyStore.open(log, TOPIC, newMaster);
    for (const [subject, key] of keys.slice(0, 2)) assert.deepEqual(await after.keyIfKnown("pg", subject), key);
    assert.equal(await after.keyIfKnown("pg", "3"), null);
  } finally {
    await log.close();
  }
});

test("a reader follows the key topic: keys created and destroyed elsewhere are seen on catch-up; a local forget holds until then", async () => {
  const master = MasterKey.generate();
  const log = await openLog("follow.db");
  try {
    const writer = await SubjectKeyStore.open(log, TOPIC, master);
    const reader = await SubjectKeyStore.open(log, TOPIC, master);
    const key = await writer.keyFor("pg", "7");
    assert.equal(await reader.keyIfKnown("pg", "7"), null, "not read yet");
    await reader.catchUp();
    assert.deepEqual(await reader.keyIfKnown("pg", "7"), key);
    reader.forgetLocally("pg", "7");
    assert.equal(await reader.keyIfKnown("pg", "7"), null);
    assert.ok(reader.wasDestroyed("pg", "7"));
    await writer.destroy("pg", "7");
    await reader.catchUp();
    assert.equal(await reader.keyIfKnown("pg", "7"), null, "the tombstone keeps it destroyed");
    const again = await writer.keyFor("pg", "7");
    await reader.catchUp();
    assert.deepEqual(await reader.keyIfKnown("pg", "7"), again, "a subject seen again after an erasure gets a new key");
    assert.ok(!reader.wasDestroyed("pg", "7"));
    await Promise.all([reader.close(), writer.close()]);
    // A read-only open of a log without the topic is an empty store and creates nothing.
    const other = await openLog("empty.db");
    try {
      const empty = await SubjectKeyStore.open(other, TOPIC, master, { create: false });
      assert.equal(empty.size, 0);
      assert.deepEqual(await other.topicNames(), []);
    } finally {
      await other.close();
    }
  } finally {
    await log.close();
  }
});

test("a catch-up that reads back this store's own new keys keeps their Buffers (their prepared cipher keys); a different key written elsewhere replaces one", async () => {
  const master = MasterKey.generate();
  const log = await openLog("own-keys.db");
  try {
    const store = await SubjectKeyStore.open(log, TOPIC, master);
    await store.createKeys("pg", ["1", "2"]);
    const first = store.cachedKey("pg", "1");
    assert.ok(first !== undefined);
    await store.catchUp();
    assert.equal(store.cachedKey("pg", "1"), first, "the same Buffer, not a copy unwrapped again");
    // Elsewhere: subject 2 forgotten, then given a new key.
    const other = await SubjectKeyStore.open(log, TOPIC, master);
    await other.destroy("pg", "2");
    const renewed = await other.keyFor("pg", "2");
    await store.catchUp();
    assert.deepEqual(store.cachedKey("pg", "2"), renewed);
    assert.equal(store.cachedKey("pg", "1"), first);
    await Promise.all([other.close(), store.close()]);
  } finally {
    await log.close();
  }
});
