/**
 * Test support: the real MySQL/MariaDB binlog files of ../shared/fixtures/mysql-binlog/ decoded
 * with the protocol layer alone. Tables are bound from their table maps; without column names in
 * the binlog, columns are called @1, @2... as mysqlbinlog does.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { readBinlogFile } from "./protocol/binlog-file.ts";
import { EventParser, payloadEvents } from "./protocol/event-parser.ts";
import { decompressPayload } from "./protocol/events.ts";
import type { ParsedEvent } from "./protocol/event-parser.ts";
import { readRowChanges } from "./protocol/rows-event.ts";
import type { RowChange } from "./protocol/rows-event.ts";
import type { TableMap } from "./protocol/table-map.ts";
import { bindTableMap } from "./schema/table-binding.ts";
import { CollationTable } from "./values/charsets.ts";

/** The fixtures directory: ../shared/fixtures/mysql-binlog relative to the repository root. Missing fixtures fail the test. */
export function fixturePath(relative: string): string {
  const path = fileURLToPath(new URL(`../../../shared/fixtures/mysql-binlog/${relative}`, import.meta.url));
  if (!existsSync(path)) throw new Error(`binlog fixture ${path} is missing: the decoder tests need ../shared/fixtures/mysql-binlog/`);
  return path;
}

/** ENUM/SET members when the binlog does not name them: "#1", "#2"... by index. */
const UNKNOWN_MEMBERS = Array.from({ length: 64 }, (_, i) => `#${i + 1}`);

export interface DecodedRows {
  readonly table: string;
  readonly kind: "write" | "update" | "delete";
  readonly eventType: number;
  readonly rows: readonly RowChange[];
}

export interface DecodedFile {
  readonly events: readonly ParsedEvent[];
  readonly rows: readonly DecodedRows[];
  readonly tableMaps: readonly TableMap[];
}

export async function decodeFixture(relative: string): Promise<DecodedFile> {
  const collations = CollationTable.builtIn();
  const parser = new EventParser(collations);
  const events: ParsedEvent[] = [];
  const rows: DecodedRows[] = [];
  const tableMaps: TableMap[] = [];
  const maps = new Map<number, TableMap>();
  const context = { sourceName: "fixture", collations, zeroDates: "null" as const, mariadb: false };
  const handle = (bytes: Buffer, inPayload: boolean) => {
    const event = parser.parse(bytes, inPayload);
    events.push(event);
    const { body } = event;
    if (body.kind === "format") Object.assign(context, { mariadb: body.format.mariadb });
    if (body.kind === "table-map") {
      maps.set(body.map.tableId, body.map);
      tableMaps.push(body.map);
    }
    if (body.kind === "payload") for (const inner of payloadEvents(decompressPayload(body.payload, parser.decompressionLimit))) handle(inner, true);
    if (body.kind !== "rows") return;
    const map = maps.get(body.rows.tableId);
    if (map === undefined) throw new Error(`rows event for unmapped table id ${body.rows.tableId}`);
    const named: TableMap = { ...map, hasNames: true, columns: map.columns.map((c, i) => ({ ...c, name: c.name ?? `@${i + 1}`, members: c.members ?? UNKNOWN_MEMBERS })) };
    const bound = bindTableMap(named, null, context);
    if (!bound.ok) throw new Error(bound.reason);
    const changes = readRowChanges(body.reader, body.rows, bound.binding.columns, { keepUnappliedJsonDiffs: true });
    rows.push({ table: `${map.database}.${map.table}`, kind: body.rows.kind, eventType: event.header.type, rows: changes });
  };
  for (const { bytes } of await readBinlogFile(fixturePath(relative))) handle(bytes, false);
  return { events, rows, tableMaps };
}
