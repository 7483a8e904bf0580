/**
 * A sink's stored offsets are read under a deadline (committedOffsets' default AbortSignal.timeout):
 * a target that does not answer before it is an outage to wait out (a retriable error), not a
 * request failure that stops the sink, and with it the daemon.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, test } from "node:test";
import { ClickHouseLogLevel, createClient } from "@clickhouse/client";
import { clickhouse, elasticsearch } from "../../test/services/ports.ts";
import { ClickHouseSink } from "../clickhouse/clickhouse-sink.ts";
import { ClickHouseConnection } from "../clickhouse/connection.ts";
import { ident } from "../clickhouse/ddl.ts";
import { ElasticsearchSink } from "../elasticsearch/elasticsearch-sink.ts";
import { isRetriable } from "../errors.ts";
import { TARGET_TEMPLATE } from "./conformance.ts";
import { testLogger, testSinkConfig } from "./test-config.ts";

async function deadlinePassed(): Promise<AbortSignal> {
  const signal = AbortSignal.timeout(1);
  while (!signal.aborted) await sleep(5);
  return signal;
}

describe("reading a sink's offsets past their deadline", () => {
  const database = `sluice_test_deadline_${randomBytes(4).toString("hex")}`;
  const admin = createClient({ url: clickhouse.url, username: clickhouse.username, password: clickhouse.password, log: { level: ClickHouseLogLevel.OFF } });
  after(async () => {
    await admin.command({ query: `DROP DATABASE IF EXISTS ${ident(database)}` });
    await admin.close();
  });

  test("ClickHouse: a request that outlives its deadline is a retriable error", async () => {
    await admin.command({ query: `CREATE DATABASE IF NOT EXISTS ${ident(database)}` });
    const config = testSinkConfig("clickhouse", { name: `deadline_${randomBytes(3).toString("hex")}`, url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database, native_deletes: false, target: TARGET_TEMPLATE });
    // The server is slow on purpose (sleep): the deadline passes while it works, as with a hung server.
    const connection = new ClickHouseConnection(config, testLogger());
    try {
      const error = await connection.select("SELECT sleep(2) FORMAT TabSeparated", AbortSignal.timeout(200)).then(() => null, (e: unknown) => e);
      assert.ok(error !== null, "the request past its deadline failed");
      assert.ok(isRetriable(error), `retriable: ${String(error)}`);
    } finally {
      await connection.close();
    }
    const sink = new ClickHouseSink(config, { logger: testLogger() });
    await sink.open(AbortSignal.timeout(60_000));
    try {
      assert.deepEqual(await sink.committedOffsets(), [], "the sink's offsets read answers");
    } finally {
      await sink.close();
    }
  });

  test("Elasticsearch: a retriable error", async () => {
    const sink = new ElasticsearchSink(testSinkConfig("elasticsearch", { name: `deadline_${randomBytes(3).toString("hex")}`, nodes: [elasticsearch.url], bulk_bytes: 2 ** 20, target: `deadline_${randomBytes(3).toString("hex")}_{table}` }), {
      logger: testLogger(),
    });
    await sink.open(AbortSignal.timeout(60_000));
    try {
      const error = await sink.committedOffsets(await deadlinePassed()).then(() => null, (e: unknown) => e);
      assert.ok(error !== null, "the read past its deadline failed");
      assert.ok(isRetriable(error), `retriable: ${String(error)}`);
      assert.deepEqual(await sink.committedOffsets(), [], "the next read answers");
    } finally {
      await sink.close();
    }
  });
});
