/**
 * One way to print a source position for people, per source kind: PostgreSQL LSNs as `0/1CD6E7F0`,
 * MySQL/MariaDB binlog coordinates as `file:offset` (with the GTID state where a checkpoint has it).
 * Logs, /status, `sluice status` and error contexts all go through here; the raw numbers stay in
 * machine-readable places (checkpoints, /status `commit`/`change`, sink version columns).
 */
import type { Position, SourceKind } from "../contracts.ts";
import { formatMysqlPosition } from "../mysql/positions.ts";
import { formatPostgresPosition } from "../postgres/positions.ts";

export function formatPosition(kind: SourceKind, position: Position): string {
  switch (kind) {
    case "postgres":
      return formatPostgresPosition(position);
    case "mysql":
      return formatMysqlPosition(position);
  }
}
