/**
 * What the PostgreSQL source's record of relation layouts (relation-layouts.ts) costs each checkpoint, per number of
 * captured tables: the checkpoint as PostgresSource.batch builds it (online.checkpoint with the layouts' rebase, the
 * entries written beside it, the acknowledgement), then the topic log's encoding of the checkpoint and of its entries.
 * One layout changes every --change-every checkpoints (a rename; 0: never), so the bytes written beside the
 * checkpoints when one changes are counted too. Prints CPU µs and bytes per checkpoint. Runs against an older
 * checkout too (no entries there: the record rides in the resume text), to compare two builds in turn:
 *
 *   node bench/postgres-checkpoint-layouts.ts [--tables 0,10,100,1000,5000] [--checkpoints 20000] [--change-every 0]
 */
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import pino from "pino";
import { OnlineSnapshotRunner } from "../connectors/common/online-snapshot-runner.ts";
import type { Checkpoint } from "../connectors/contracts.ts";
import { RelationLayouts } from "../connectors/postgres/relation-layouts.ts";
import type { RelationLayout } from "../connectors/postgres/relation-layouts.ts";
import { encodeCheckpoint } from "../connectors/topics/checkpoint-codec.ts";

const { values: args } = parseArgs({
  options: {
    tables: { type: "string", default: "0,10,100,1000,5000" },
    checkpoints: { type: "string", default: "20000" },
    "change-every": { type: "string", default: "0" },
  },
});
const CHECKPOINTS = Number(args.checkpoints);
const CHANGE_EVERY = Number(args["change-every"]);
const logger = pino({ level: "silent" });

/** A table of 10 int columns named column_0..9, as the figures of d50c8cc. */
const layoutOf = (i: number, suffix = ""): RelationLayout => ({
  schema: "public",
  table: `table_${i}${suffix}`,
  columns: Array.from({ length: 10 }, (_, c) => ({ number: c + 1, name: `column_${c}`, typeOid: 23, typeModifier: -1 })),
});

/** The newer API (entries beside the checkpoint), when this checkout has it. */
interface WithEntries {
  entries(): { readonly entries: Readonly<Record<string, string | null>> | undefined; readonly written: unknown };
  durable(written: unknown): void;
}
const withEntries = (layouts: RelationLayouts): WithEntries | null => ("entries" in layouts ? (layouts as unknown as WithEntries) : null);

function measure(tables: number): { cpuUs: number; checkpointBytes: number; entryBytes: number; carrying: number } {
  const layouts = new RelationLayouts(logger);
  const online = new OnlineSnapshotRunner({ logger, context: {} });
  layouts.restore(null);
  for (let i = 0; i < tables; i++) layouts.note(16_384 + i, layoutOf(i), null);
  const newer = withEntries(layouts);
  let checkpointBytes = 0;
  let entryBytes = 0;
  let carrying = 0;
  const start = process.cpuUsage();
  for (let n = 1; n <= CHECKPOINTS; n++) {
    if (CHANGE_EVERY > 0 && tables > 0 && n % CHANGE_EVERY === 0) layouts.note(16_384, layoutOf(0, `_${n}`), null);
    const at = { commit: BigInt(n * 100), change: BigInt(n * 100) };
    const position = online.checkpoint(at, (base) => layouts.rebase(base, at));
    const made = newer?.entries();
    const checkpoint: Checkpoint = made?.entries === undefined ? { source: "pg", position } : { source: "pg", position, entries: made.entries };
    checkpointBytes += Buffer.byteLength(encodeCheckpoint(checkpoint));
    if (checkpoint.entries !== undefined) carrying++;
    for (const value of Object.values(checkpoint.entries ?? {})) entryBytes += value === null ? 0 : Buffer.byteLength(value);
    if (made !== undefined) newer!.durable(made.written);
  }
  const used = process.cpuUsage(start);
  return { cpuUs: (used.user + used.system) / CHECKPOINTS, checkpointBytes: checkpointBytes / CHECKPOINTS, entryBytes, carrying };
}

const log = (text: string) => process.stdout.write(`${text}\n`);
log(`checkpoints ${CHECKPOINTS} per table count, a layout changed every ${CHANGE_EVERY || "never"}; load ${loadavg().map((l) => l.toFixed(1)).join(" / ")}`);
log("| captured tables | checkpoint bytes | checkpoints with entries | entry bytes in all | CPU µs per checkpoint |");
log("|---:|---:|---:|---:|---:|");
for (const tables of args.tables.split(",").map(Number)) {
  measure(tables);
  const { cpuUs, checkpointBytes, entryBytes, carrying } = measure(tables);
  log(`| ${tables.toLocaleString("en")} | ${Math.round(checkpointBytes).toLocaleString("en")} | ${carrying} | ${entryBytes.toLocaleString("en")} | ${cpuUs.toFixed(2)} |`);
}
