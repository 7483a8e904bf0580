/**
 * CPU of capture's governance path alone, in one process (no database, no topic log writes): the
 * events of bench/governance.ts's table (8 columns; two personal columns sealed per subject `account`,
 * 1,000 subjects; three checks: not_null, range, regex) go through the checks, the transforms and the
 * encryption as capture does it (prepare per batch of 1,000, then apply per event), with the seal
 * workers or on the main thread. Prints the CPU of all the process's threads per change (µs), and of
 * the main thread alone (where capture runs), per round; compare runs made one after the other on the
 * same machine.
 *
 *   node bench/governance-path.ts [--changes 200000] [--rounds 3] [--workers 1|0]
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { ChangeEvent, TableSchema } from "../connectors/contracts.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import type { GovernanceConfig } from "../config/governance.ts";
import type { SluiceConfig } from "../config/schema.ts";
import { DataChecks } from "../daemon/governance/data-checks.ts";
import { lazyKeyStore, PersonalDataEncryptor } from "../daemon/governance/personal-data.ts";
import { SealWorkers } from "../daemon/governance/seal-workers.ts";
import { ColumnTransforms } from "../daemon/governance/transforms.ts";
import { createLogger } from "../runtime/logger.ts";

const { values: args } = parseArgs({ options: { changes: { type: "string", default: "200000" }, rounds: { type: "string", default: "3" }, workers: { type: "string", default: "1" } } });
const CHANGES = Number(args.changes);
const BATCH = 1_000;

const schema: TableSchema = {
  source: "pg",
  database: "db",
  schema: "bench",
  table: "items",
  sourceKind: "postgres",
  key: ["id"],
  columns: [
    { name: "id", dbType: "bigint", nullable: false, primaryKeyIndex: 1 },
    { name: "account", dbType: "integer", nullable: false },
    { name: "name", dbType: "text", nullable: true },
    { name: "email", dbType: "text", nullable: true },
    { name: "amount", dbType: "numeric(12,2)", nullable: true },
    { name: "active", dbType: "boolean", nullable: true },
    { name: "created_at", dbType: "timestamp with time zone", nullable: true },
    { name: "note", dbType: "text", nullable: true },
  ],
};
const governance = {
  tables: {
    "bench.items": {
      transforms: {},
      personal: { subject: "account", columns: ["name", "email"] },
      checks: [
        { check: "not_null", column: "account", action: "warn" },
        { check: "range", column: "amount", min: 0, max: 10_000_000, action: "warn" },
        { check: "regex", column: "email", pattern: "^[^@]+@[^@]+$", action: "warn" },
      ],
    },
  },
} as unknown as GovernanceConfig;

function event(id: number): ChangeEvent {
  const after = { id: BigInt(id), account: id % 1000, name: `name ${id}`, email: `user${id}@example.com`, amount: ((id % 100000) / 100).toFixed(2), active: id % 2 === 0, created_at: 1_764_000_000_000_000 + id, note: `${id.toString(16).padStart(32, "0")}` };
  return {
    op: "c",
    key: { id: BigInt(id) },
    before: null,
    after,
    schema,
    source: { connector: "postgres", name: "pg", db: "db", schema: "bench", table: "items", position: { commit: BigInt(id), change: 1n }, txId: null, commitTimeMs: 0, snapshot: false },
  } as unknown as ChangeEvent;
}

const dir = mkdtempSync(join(tmpdir(), "sluice-governance-path-"));
writeFileSync(join(dir, "master.key"), "5a".repeat(32));
const config = { name: "bench", personal_data: { master_key_file: join(dir, "master.key"), previous_master_key_files: [] }, sources: [{ name: "pg", governance }] } as unknown as SluiceConfig;
const log = await EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger: createLogger("silent"), maintenanceIntervalMs: 0 });
const workers = args.workers === "0" ? null : new SealWorkers(Number(args.workers));
const transforms = new ColumnTransforms(governance);
const checks = new DataChecks("pg", governance, createLogger("silent"), { onRowsChecked: () => undefined });
const personal = new PersonalDataEncryptor({ name: "pg", governance } as never, lazyKeyStore(config, log, { create: true }), workers);

/** CPU µs per change of all threads and of the main thread. */
async function round(from: number): Promise<{ all: number; main: number }> {
  let micros = 0;
  let mainMicros = 0;
  let published = 0;
  for (let at = from; at < from + CHANGES; at += BATCH) {
    const events = Array.from({ length: BATCH }, (_, i) => event(at + i));
    // The events are made outside the measure: only the governance path is counted.
    const start = process.cpuUsage();
    const mainStart = process.threadCpuUsage();
    checks.startBatch();
    const transformed = events.map((e) => transforms.apply(e));
    await personal.prepare(transformed);
    for (const e of transformed) {
      if (checks.inspect(e) !== null) throw new Error("a check failed");
      const out = await personal.apply(e);
      if (typeof out.after!["name"] === "string") published += 1;
    }
    const used = process.cpuUsage(start);
    micros += used.user + used.system;
    const main = process.threadCpuUsage(mainStart);
    mainMicros += main.user + main.system;
  }
  if (published !== CHANGES) throw new Error(`${published} of ${CHANGES} published`);
  return { all: micros / CHANGES, main: mainMicros / CHANGES };
}

try {
  await round(0); // warm up: keys created, code optimized
  for (let r = 1; r <= Number(args.rounds); r++) {
    const { all, main } = await round(r * CHANGES);
    process.stdout.write(`round ${r}: ${all.toFixed(2)} µs CPU per change (all threads; workers ${args.workers}), main thread ${main.toFixed(2)}\n`);
  }
} finally {
  await log.close();
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}
