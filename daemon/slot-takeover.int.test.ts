/**
 * A new capture leader ends the walsender still holding ITS slot, and no other: against the real
 * PostgreSQL, with a second logical slot streaming to another reader (pg_recvlogical) on the same
 * server. The takeover's first query let the planner call pg_terminate_backend on every active
 * slot's walsender before testing the slot's name, ending every replication connection of the server.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { after, test } from "node:test";
import type pg from "pg";
import type { SluiceConfig } from "../config/schema.ts";
import { adminClient, randomName, sourceConfig } from "../connectors/postgres/int-test-support.ts";
import { captureNames } from "../connectors/postgres/slot-setup.ts";
import { postgres } from "../test/services/ports.ts";
import { createLogger } from "../runtime/logger.ts";
import type { RunSelection } from "./roles.ts";
import { takeOverSlots } from "./slot-takeover.ts";

const PG_RECVLOGICAL = process.env["SLUICE_PG_BIN"] ? `${process.env["SLUICE_PG_BIN"]}/pg_recvlogical` : "/usr/lib/postgresql/15/bin/pg_recvlogical";
const readers: ChildProcess[] = [];
const slots: string[] = [];
let admin: pg.Client | null = null;

after(async () => {
  for (const reader of readers) reader.kill("SIGKILL");
  if (admin) {
    for (const slot of slots) {
      for (let i = 0; i < 50; i++) {
        const dropped = await admin.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", [slot]).then(() => true, () => false);
        const left = await admin.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", [slot]);
        if (dropped && left.rowCount === 0) break;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    await admin.end();
  }
});

function stream(slot: string): ChildProcess {
  const reader = spawn(PG_RECVLOGICAL, ["-h", postgres.host, "-p", String(postgres.port), "-U", postgres.user, "-d", postgres.database, "--slot", slot, "--start", "-f", "/dev/null"], {
    env: { ...process.env, PGPASSWORD: postgres.password },
    stdio: "ignore",
  });
  readers.push(reader);
  return reader;
}

async function activePid(slot: string): Promise<number | null> {
  const { rows } = await admin!.query<{ pid: number | null }>("SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1", [slot]);
  return rows[0]?.pid ?? null;
}

async function waitActive(slot: string): Promise<number> {
  for (let i = 0; i < 300; i++) {
    const pid = await activePid(slot);
    if (pid !== null) return pid;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`slot ${slot} never became active`);
}

test("the takeover ends the walsender holding the source's slot and leaves other slots' walsenders alone", { timeout: 120_000 }, async () => {
  admin = await adminClient();
  const source = sourceConfig({ tables: ["takeover_none.*"] });
  const own = captureNames(source).slot;
  const other = randomName("other_slot");
  for (const slot of [own, other]) {
    await admin.query("SELECT pg_create_logical_replication_slot($1, 'test_decoding')", [slot]);
    slots.push(slot);
  }
  stream(own);
  stream(other);
  const ownPid = await waitActive(own);
  const otherPid = await waitActive(other);

  const selection: RunSelection = { sources: [source.name], sinks: [], roles: ["capture"] };
  await takeOverSlots({ sources: [source] } as unknown as SluiceConfig, selection, createLogger("silent"), new AbortController().signal);

  for (let i = 0; i < 50 && (await activePid(own)) === ownPid; i++) await new Promise((resolve) => setTimeout(resolve, 100));
  assert.notEqual(await activePid(own), ownPid, "the walsender holding the source's slot was ended");
  const alive = await admin.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", [otherPid]);
  assert.equal(alive.rowCount, 1, "the other slot's walsender still runs");
  assert.equal(await activePid(other), otherPid, "the other slot is still held by its reader");
});
