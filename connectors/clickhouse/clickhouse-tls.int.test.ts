/**
 * The ClickHouse sink over HTTPS with a password (and a client certificate where the server
 * requires one) against private ClickHouse 18.16 servers from test/services/tls-sinks.ts: rows
 * are applied through the secure connection, and a wrong CA, a wrong password or a missing client
 * certificate fail at once with a permanent error naming ClickHouse and its address.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { makeCa } from "../../test/services/tls.ts";
import { startTlsClickHouse } from "../../test/services/tls-sinks.ts";
import type { SecureServer } from "../../test/services/tls-sinks.ts";
import type { SinkConfig } from "../../config/schema.ts";
import { SluiceError } from "../errors.ts";
import { TARGET_TEMPLATE } from "../sinks/conformance.ts";
import { renderTarget } from "../sinks/naming.ts";
import { testLogger, testSinkConfig } from "../sinks/test-config.ts";
import { Events, randomTableName, tableSchema } from "../sinks/test-events.ts";
import { ClickHouseSink } from "./clickhouse-sink.ts";
import { ClickHouseConnection } from "./connection.ts";

type ClickHouseConfig = Extract<SinkConfig, { kind: "clickhouse" }>;
const signal = () => AbortSignal.timeout(60_000);

describe("ClickHouse sink over HTTPS", { timeout: 300_000 }, () => {
  let server: SecureServer;
  let mutual: SecureServer;
  let client: { certFile: string; keyFile: string };
  let otherCaDir: string;
  let otherCaFile: string;

  before(async () => {
    [server, mutual] = await Promise.all([startTlsClickHouse(), startTlsClickHouse({ requireClientCert: true })]);
    client = await mutual.ca.clientCert("sluice-sink");
    otherCaDir = mkdtempSync("/var/tmp/sluice-other-ca-");
    otherCaFile = (await makeCa(otherCaDir, "other")).caFile;
  });
  after(async () => {
    await Promise.all([server?.stop(), mutual?.stop()]);
    if (otherCaDir) rmSync(otherCaDir, { recursive: true, force: true });
  });

  function config(target: SecureServer, overrides: Partial<ClickHouseConfig> = {}): ClickHouseConfig {
    return testSinkConfig("clickhouse", {
      name: `ch_tls_${randomTableName("s")}`,
      url: `https://${target.host}:${target.port}`,
      user: target.user,
      password: target.password,
      database: "default",
      native_deletes: false,
      target: TARGET_TEMPLATE,
      tls: { ca_file: target.ca.caFile },
      ...overrides,
    });
  }

  async function applyAndRead(sinkConfig: ClickHouseConfig): Promise<string> {
    const sink = new ClickHouseSink(sinkConfig, { logger: testLogger() });
    await sink.open(signal());
    try {
      const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
      await sink.write([events.insert(1n, { id: 1, v: "over tls" }), events.insert(2n, { id: 2, v: "second" }), events.delete(3n, { id: 2 })], signal());
      const connection = new ClickHouseConnection(sinkConfig, testLogger());
      try {
        return (await connection.select(`SELECT id, v FROM default.${renderTarget(TARGET_TEMPLATE, events.schema)} ORDER BY id FORMAT TabSeparated`, signal())).toString("utf8");
      } finally {
        await connection.close();
      }
    } finally {
      await sink.close();
    }
  }

  /** Opening a sink must fail without retrying until the signal; returns the error. */
  async function openFailure(sinkConfig: ClickHouseConfig): Promise<SluiceError> {
    const sink = new ClickHouseSink(sinkConfig, { logger: testLogger() });
    const deadline = AbortSignal.timeout(60_000);
    const error = await sink.open(deadline).then(
      () => null,
      (e: unknown) => e,
    );
    await sink.close().catch(() => undefined);
    assert.ok(error instanceof SluiceError, `expected a SluiceError, got ${String(error)}`);
    assert.equal(deadline.aborted, false, "failed at once, not after retrying");
    assert.equal(error.retriable, false, `${error.code}: ${error.message}`);
    return error;
  }

  test("applies rows over HTTPS with the sink's CA file and password", async () => {
    assert.equal(await applyAndRead(config(server)), "1\tover tls\n");
  });

  test("applies rows to a server that requires a client certificate (tls.cert_file/key_file)", async () => {
    assert.equal(await applyAndRead(config(mutual, { tls: { ca_file: mutual.ca.caFile, cert_file: client.certFile, key_file: client.keyFile } })), "1\tover tls\n");
  });

  test("a CA that did not sign the server's certificate: SINK_TLS_FAILED naming ClickHouse and its address", async () => {
    const error = await openFailure(config(server, { tls: { ca_file: otherCaFile } }));
    assert.equal(error.code, "SINK_TLS_FAILED", error.message);
    assert.match(error.message, new RegExp(`^ClickHouse https://${server.host}:${server.port}: certificate verify failed`));
    assert.equal(error.context["url"], `https://${server.host}:${server.port}`);
  });

  test("no CA file: the private CA is not trusted by default", async () => {
    const { tls: _, ...withoutTls } = config(server);
    const error = await openFailure(withoutTls as ClickHouseConfig);
    assert.equal(error.code, "SINK_TLS_FAILED", error.message);
  });

  test("a wrong password: SINK_AUTH_FAILED naming ClickHouse and its address, without the password", async () => {
    const error = await openFailure(config(server, { password: "wrong-password-value" }));
    assert.equal(error.code, "SINK_AUTH_FAILED", error.message);
    assert.match(error.message, new RegExp(`^ClickHouse https://${server.host}:${server.port} refused the sink's login`));
    assert.doesNotMatch(error.message, /wrong-password-value/);
  });

  test("no client certificate where the server requires one: a permanent failure naming ClickHouse", async () => {
    const error = await openFailure(config(mutual));
    assert.equal(error.code, "SINK_TLS_FAILED", error.message);
    assert.match(error.message, new RegExp(`^ClickHouse https://${mutual.host}:${mutual.port}: TLS handshake failed`));
  });
});
