/**
 * Helpers for the integration tests against the real PostgreSQL of test/services/: random
 * names, a source config, an admin connection, reading until a condition, and cleanup.
 */
import pg from "pg";
import { postgres } from "../../test/services/ports.ts";
import type { PostgresSourceConfig } from "../../config/schema.ts";
import type { ChangeEvent } from "../contracts.ts";
import { PostgresSource } from "./source.ts";
import { isSnapshotIncomplete } from "./positions.ts";
import type { PostgresSourceBatch, PostgresSourceOptions } from "./source.ts";
import { connectError as sourceConnectError, randomName, readUntil, testLogger } from "../common/source-test-support.ts";
import type { Collected as SourceCollected } from "../common/source-test-support.ts";

// Run in a zone far from UTC so time-zone mistakes show.
process.env["TZ"] = "Pacific/Chatham";

export { randomName, readUntil, testLogger };

export function sourceConfig(overrides: Partial<PostgresSourceConfig> & Pick<PostgresSourceConfig, "tables">): PostgresSourceConfig {
  const name = overrides.name ?? randomName("src");
  return {
    kind: "postgres",
    name,
    host: postgres.host,
    port: postgres.port,
    user: postgres.user,
    password: postgres.password,
    database: postgres.database,
    tls: { mode: "disable" },
    snapshot: { mode: "initial", parallelism: 2, chunk_rows: 1000 },
    decimal_mode: "precise",
    envelope: "debezium",
    time_precision_mode: "adaptive",
    hstore_handling_mode: "json",
    interval_handling_mode: "numeric",
    skipped_operations: ["t"],
    max_buffer_bytes: 8 * 2 ** 20,
    heartbeat_interval: 1000,
    wal_receiver_timeout: 60_000,
    slot: randomName("slot"),
    publication: randomName("pub"),
    create_slot: true,
    create_publication: true,
    key_columns: {},
    transaction_metadata: false,
    ...overrides,
  };
}

export async function adminClient(): Promise<pg.Client> {
  const client = new pg.Client({ ...postgres, types: { getTypeParser: () => (text: string) => text } });
  client.on("error", () => undefined);
  await client.connect();
  await client.query("SET TIME ZONE 'UTC'");
  return client;
}

/**
 * Runs CHECKPOINT about every `intervalMs` until the returned function is called. A checkpoint logs the server's running
 * transactions, which lets the slot's restart_lsn pass changes already confirmed: online snapshots that wait for it (up
 * to the ~15 s between the server's own such records) go on within a second, so tests do not idle through the wait.
 */
export function checkpointing(intervalMs = 500): () => Promise<void> {
  let stopped = false;
  const loop = (async () => {
    const client = await adminClient();
    try {
      while (!stopped) {
        await client.query("CHECKPOINT");
        await new Promise((resolve) => setTimeout(resolve, intervalMs));
      }
    } finally {
      await client.end();
    }
  })();
  return async () => {
    stopped = true;
    await loop;
  };
}

export function newSource(config: PostgresSourceConfig, options: Partial<PostgresSourceOptions> = {}): PostgresSource {
  return new PostgresSource(config, { logger: testLogger(), statusIntervalMs: 1000, ...options });
}

/** The SluiceError a new source on `config` fails to connect with (the test fails when it connects). */
export function connectError(config: PostgresSourceConfig) {
  return sourceConnectError(newSource(config));
}

export type Collected = SourceCollected<PostgresSourceBatch>;

/** A batch carried a checkpoint past the initial snapshot (it names the relations' layouts then, relation-layouts.ts). */
export const snapshotFinished = (c: Collected): boolean => c.batches.some((b) => !isSnapshotIncomplete(b.checkpoint.position));

export async function slotRow(admin: pg.Client, slot: string): Promise<Record<string, string | null> | undefined> {
  const result = await admin.query<Record<string, string | null>>(
    "SELECT active, active_pid, confirmed_flush_lsn::text AS confirmed_flush_lsn, restart_lsn::text AS restart_lsn, wal_status FROM pg_replication_slots WHERE slot_name = $1",
    [slot],
  );
  return result.rows[0];
}

/** Drops the slot (waiting for its walsender to go), the publication and the schema. */
export async function cleanUp(admin: pg.Client, config: PostgresSourceConfig, schema?: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const row = await slotRow(admin, config.slot!);
    if (row === undefined) break;
    if (row["active"] === "t") {
      await new Promise((resolve) => setTimeout(resolve, 100));
      continue;
    }
    await admin.query("SELECT pg_drop_replication_slot($1)", [config.slot]).catch(() => undefined);
  }
  await admin.query(`DROP PUBLICATION IF EXISTS "${config.publication!}"`);
  if (schema !== undefined) await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}

export function byId(events: readonly ChangeEvent[], id: unknown, op?: string): ChangeEvent | undefined {
  return events.find((e) => (e.after?.["id"] ?? e.before?.["id"]) === id && (op === undefined || e.op === op));
}
