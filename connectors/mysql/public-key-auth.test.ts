/**
 * caching_sha2_password full authentication over plain TCP, against a scripted MySQL 8 handshake (no MySQL 8 server here;
 * MariaDB has no such plugin). The fake plays the man in the middle: asked for the server's public key, it answers with
 * its own and decrypts the password it then receives.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, privateDecrypt, constants } from "node:crypto";
import { createServer } from "node:net";
import type { AddressInfo, Socket } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MysqlSourceConfig } from "../../config/schema.ts";
import { reportUnreadableSecretFiles } from "../../config/secret-files.ts";
import type { UnreadableSecretFile } from "../../config/secret-files.ts";
import { connectionOptions } from "./connection-settings.ts";
import { PUBLIC_KEY_RETRIEVAL_REFUSED } from "./public-key-auth.ts";
import { openConnection } from "./sql-connection.ts";

const PASSWORD = "s3cret-capture-password";
const SCRAMBLE = Buffer.from("0123456789abcdefghij");
// PROTOCOL_41, SECURE_CONNECTION, PLUGIN_AUTH, LONG_PASSWORD, TRANSACTIONS
const CAPABILITIES = 0x200 | 0x8000 | 0x80000 | 0x1 | 0x2000;

function frame(sequence: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(4);
  header.writeUIntLE(payload.length, 0, 3);
  header[3] = sequence;
  return Buffer.concat([header, payload]);
}

function handshake(): Buffer {
  const flags = Buffer.alloc(4);
  flags.writeUInt32LE(CAPABILITIES);
  return Buffer.concat([
    Buffer.from([10]),
    Buffer.from("8.0.36\0"),
    Buffer.from([1, 0, 0, 0]),
    SCRAMBLE.subarray(0, 8),
    Buffer.from([0]),
    flags.subarray(0, 2),
    Buffer.from([45, 2, 0]),
    flags.subarray(2, 4),
    Buffer.from([21]),
    Buffer.alloc(10),
    SCRAMBLE.subarray(8, 20),
    Buffer.from([0]),
    Buffer.from("caching_sha2_password\0"),
  ]);
}

const OK = Buffer.from([0, 0, 0, 2, 0, 0, 0]);

interface Observed {
  keyRequested: boolean;
  /** The client answered the switch to caching_sha2_password (sent the scramble's token). */
  tokenSent: boolean;
  /** The password the fake could read: the man in the middle's win. */
  readPassword?: string;
  /** An encrypted password that arrived without a key request (encrypted with a configured key). */
  encryptedWithoutRequest?: Buffer;
}

/**
 * How the fake's account logs in: full (caching_sha2_password, not in the server's cache: the password is needed), fast
 * (caching_sha2_password found in the cache: the scramble's token is enough) or native (mysql_native_password: no switch).
 */
type Login = "full" | "fast" | "native";

/** A server that asks for `login`; `privateKey` decrypts what the client sends with its key. */
async function fakeMysql8(publicPem: string, privatePem: string, login: Login = "full"): Promise<{ port: number; observed: Observed; close: () => Promise<void> }> {
  const observed: Observed = { keyRequested: false, tokenSent: false };
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.write(frame(0, handshake()));
    let pending = Buffer.alloc(0);
    let step = 0;
    const decrypt = (encrypted: Buffer): string => {
      const xored = privateDecrypt({ key: privatePem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" }, encrypted);
      return Buffer.from(xored.map((byte, index) => byte ^ (SCRAMBLE[index % SCRAMBLE.length] ?? 0)))
        .toString("utf8")
        .replace(/\0$/, "");
    };
    socket.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 4) {
        const length = pending.readUIntLE(0, 3);
        if (pending.length < 4 + length) return;
        const sequence = pending[3] ?? 0;
        const payload = pending.subarray(4, 4 + length);
        pending = pending.subarray(4 + length);
        const reply = (data: Buffer): void => void socket.write(frame(sequence + 1, data));
        const afterToken = (): void => {
          observed.tokenSent = true;
          if (login === "fast") {
            step = 4;
            socket.write(frame(sequence + 1, Buffer.from([1, 3]))); // cache hit: fast authentication succeeded
            socket.write(frame(sequence + 2, OK));
            return;
          }
          step = 2;
          reply(Buffer.from([1, 4])); // cache miss: perform full authentication
        };
        if (step === 0) {
          // Handshake response: switch to caching_sha2_password unless the client answered with it already.
          step = 1;
          if (login === "native") {
            step = 4;
            reply(OK);
          } else if (payload.includes(Buffer.from("caching_sha2_password\0"))) afterToken();
          else reply(Buffer.concat([Buffer.from([0xfe]), Buffer.from("caching_sha2_password\0"), SCRAMBLE, Buffer.from([0])]));
        } else if (step === 1) {
          afterToken();
        } else if (step === 2) {
          if (payload.length === 1 && payload[0] === 2) {
            observed.keyRequested = true;
            reply(Buffer.concat([Buffer.from([1]), Buffer.from(publicPem)]));
            step = 3;
          } else {
            observed.encryptedWithoutRequest = Buffer.from(payload);
            observed.readPassword = decrypt(Buffer.from(payload));
            step = 4;
            reply(OK);
          }
        } else if (step === 3) {
          observed.readPassword = decrypt(Buffer.from(payload));
          step = 4;
          reply(OK);
        } else reply(OK); // every statement after the login
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const close = async (): Promise<void> => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { port, observed, close };
}

function rsaPair(): { publicPem: string; privatePem: string } {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return { publicPem: publicKey.export({ type: "spki", format: "pem" }).toString(), privatePem: privateKey.export({ type: "pkcs8", format: "pem" }).toString() };
}

function config(port: number, extra: Partial<MysqlSourceConfig> = {}): MysqlSourceConfig {
  return {
    kind: "mysql",
    name: "app",
    host: "127.0.0.1",
    port,
    user: "capture",
    password: PASSWORD,
    tls: { mode: "disable" },
    snapshot: { mode: "initial", parallelism: 1, chunk_rows: 10 },
    decimal_mode: "precise",
    envelope: "debezium",
    time_precision_mode: "adaptive",
    skipped_operations: ["t"],
    transaction_metadata: false,
    max_buffer_bytes: 2 ** 20,
    heartbeat_interval: 1000,
    server_id: 1234,
    zero_dates: "null",
    partition_drops: "mirror",
    allow_public_key_retrieval: false,
    tables: ["db.t"],
    ...extra,
  };
}

test("tls.mode disable: a MySQL 8 full authentication is refused before the server's key is asked for, naming the source and the ways out", async () => {
  const attacker = rsaPair();
  const server = await fakeMysql8(attacker.publicPem, attacker.privatePem);
  try {
    await assert.rejects(openConnection(connectionOptions(config(server.port), "catalog")), (error: Error & { code?: string; retriable?: boolean }) => {
      assert.equal(error.code, PUBLIC_KEY_RETRIEVAL_REFUSED);
      assert.equal(error.retriable, false);
      assert.match(error.message, /source "app"/);
      assert.match(error.message, /127\.0\.0\.1:\d+/);
      assert.match(error.message, /tls\.mode/);
      assert.match(error.message, /server_public_key_file/);
      assert.match(error.message, /allow_public_key_retrieval: true/);
      assert.doesNotMatch(error.message, new RegExp(PASSWORD));
      return true;
    });
    assert.equal(server.observed.keyRequested, false);
    assert.equal(server.observed.readPassword, undefined);
  } finally {
    await server.close();
  }
});

test("tls.mode disable: a MySQL 8 login the server's cache lets through (fast authentication) is refused too, so that it shows at deploy time, not at the server's next restart", async () => {
  const attacker = rsaPair();
  const server = await fakeMysql8(attacker.publicPem, attacker.privatePem, "fast");
  try {
    await assert.rejects(openConnection(connectionOptions(config(server.port), "catalog")), (error: Error & { code?: string; retriable?: boolean }) => {
      assert.equal(error.code, PUBLIC_KEY_RETRIEVAL_REFUSED);
      assert.equal(error.retriable, false);
      assert.match(error.message, /source "app"/);
      assert.match(error.message, /caching_sha2_password/);
      assert.match(error.message, /restart, a FLUSH PRIVILEGES or a failover/);
      assert.match(error.message, /server_public_key_file/);
      assert.match(error.message, /allow_public_key_retrieval: true/);
      return true;
    });
    assert.equal(server.observed.tokenSent, false);
    assert.equal(server.observed.keyRequested, false);
  } finally {
    await server.close();
  }
});

test("a fast-authentication login goes on with server_public_key_file or allow_public_key_retrieval, and a mysql_native_password account needs neither", async () => {
  const real = rsaPair();
  const keyFile = join(mkdtempSync(join(tmpdir(), "sluice-key-")), "public_key.pem");
  writeFileSync(keyFile, real.publicPem);
  for (const [login, extra] of [
    ["fast", { server_public_key_file: keyFile }],
    ["fast", { allow_public_key_retrieval: true }],
    ["native", {}],
  ] as const) {
    const server = await fakeMysql8(real.publicPem, real.privatePem, login);
    try {
      const connection = await openConnection(connectionOptions(config(server.port, extra), "catalog"));
      connection.destroy();
      assert.equal(server.observed.keyRequested, false);
      assert.equal(server.observed.readPassword, undefined);
    } finally {
      await server.close();
    }
  }
});

test("server_public_key_file unreadable at a reconnection (a Secret being swapped) keeps the key read last and reports it; unreadable at the first read it is a configuration error", async () => {
  const real = rsaPair();
  const directory = mkdtempSync(join(tmpdir(), "sluice-key-"));
  const keyFile = join(directory, "public_key.pem");
  const problems: UnreadableSecretFile[] = [];
  reportUnreadableSecretFiles((problem) => problems.push(problem));
  try {
    assert.throws(() => connectionOptions(config(3306, { name: "swapped", server_public_key_file: keyFile }), "catalog"), { code: "TLS_FILE_UNREADABLE" });
    writeFileSync(keyFile, real.publicPem);
    connectionOptions(config(3306, { name: "swapped", server_public_key_file: keyFile }), "catalog");
    rmSync(keyFile);
    const server = await fakeMysql8(real.publicPem, real.privatePem);
    try {
      const connection = await openConnection(connectionOptions(config(server.port, { name: "swapped", server_public_key_file: keyFile }), "catalog"));
      connection.destroy();
      assert.equal(server.observed.readPassword, PASSWORD);
      assert.equal(server.observed.keyRequested, false);
    } finally {
      await server.close();
    }
    assert.deepEqual(
      problems.map(({ name, key, file, code }) => ({ name, key, file, code })),
      [{ name: "swapped", key: "server_public_key", file: keyFile, code: "ENOENT" }],
    );
  } finally {
    reportUnreadableSecretFiles(null);
  }
});

test("server_public_key_file: the password is encrypted with the configured key, the server is never asked for one", async () => {
  const real = rsaPair();
  const server = await fakeMysql8(real.publicPem, real.privatePem);
  const keyFile = join(mkdtempSync(join(tmpdir(), "sluice-key-")), "public_key.pem");
  writeFileSync(keyFile, real.publicPem);
  try {
    const connection = await openConnection(connectionOptions(config(server.port, { server_public_key_file: keyFile }), "catalog"));
    connection.destroy();
    assert.equal(server.observed.keyRequested, false);
    assert.ok(server.observed.encryptedWithoutRequest !== undefined);
    assert.equal(server.observed.readPassword, PASSWORD); // only the holder of the configured key's private half reads it
  } finally {
    await server.close();
  }
});

test("allow_public_key_retrieval: true keeps the old behaviour, the key fetched over the plain connection (the documented risk)", async () => {
  const attacker = rsaPair();
  const server = await fakeMysql8(attacker.publicPem, attacker.privatePem);
  try {
    const connection = await openConnection(connectionOptions(config(server.port, { allow_public_key_retrieval: true }), "catalog"));
    connection.destroy();
    assert.equal(server.observed.keyRequested, true);
    assert.equal(server.observed.readPassword, PASSWORD);
  } finally {
    await server.close();
  }
});

test("server_public_key_file that holds no public key is a configuration error naming the option", () => {
  const file = join(mkdtempSync(join(tmpdir(), "sluice-key-")), "not-a-key.pem");
  writeFileSync(file, "hello");
  assert.throws(() => connectionOptions(config(3306, { server_public_key_file: file }), "catalog"), (error: Error & { code?: string }) => {
    assert.equal(error.code, "TLS_FILE_UNREADABLE");
    assert.match(error.message, /server_public_key_file/);
    return true;
  });
});
