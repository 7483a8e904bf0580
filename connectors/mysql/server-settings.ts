/**
 * The server settings binlog capture depends on, and the check that refuses to start when one is
 * wrong -- naming the setting and the value to set, all problems at once.
 */
import { SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";
import { serverVariables } from "./catalog.ts";
import type { Sql } from "./catalog.ts";
import type { Flavor } from "./resume-token.ts";

export interface ServerSettings {
  readonly flavor: Flavor;
  readonly version: string;
  readonly serverId: number;
  readonly logBin: string;
  readonly binlogFormat: string;
  readonly binlogRowImage: string;
  /** FULL, MINIMAL or NO_LOG; "" where the server has no such setting (before MySQL 8.0.1 / MariaDB 10.5). */
  readonly binlogRowMetadata: string;
  readonly binlogChecksum: string;
  /** MySQL gtid_mode (ON, OFF...); MariaDB always logs GTIDs. */
  readonly gtidMode: string;
  readonly transactionCompression: string;
  readonly logBinCompress: string;
}

const NAMES = [
  "version",
  "version_comment",
  "server_id",
  "log_bin",
  "binlog_format",
  "binlog_row_image",
  "binlog_row_metadata",
  "binlog_checksum",
  "gtid_mode",
  "binlog_transaction_compression",
  "log_bin_compress",
];

export async function readServerSettings(sql: Sql): Promise<ServerSettings> {
  const v = await serverVariables(sql, NAMES);
  const version = v.get("version") ?? "";
  const flavor: Flavor = /mariadb/i.test(`${version} ${v.get("version_comment") ?? ""}`) ? "mariadb" : "mysql";
  return {
    flavor,
    version,
    serverId: Number(v.get("server_id") ?? 0),
    logBin: (v.get("log_bin") ?? "").toUpperCase(),
    binlogFormat: (v.get("binlog_format") ?? "").toUpperCase(),
    binlogRowImage: (v.get("binlog_row_image") ?? "").toUpperCase(),
    binlogRowMetadata: (v.get("binlog_row_metadata") ?? "").toUpperCase(),
    binlogChecksum: (v.get("binlog_checksum") ?? "NONE").toUpperCase(),
    gtidMode: flavor === "mariadb" ? "ON" : (v.get("gtid_mode") ?? "OFF").toUpperCase(),
    transactionCompression: (v.get("binlog_transaction_compression") ?? "OFF").toUpperCase(),
    logBinCompress: (v.get("log_bin_compress") ?? "OFF").toUpperCase(),
  };
}

/** Every setting that prevents capture, each with what to set. */
export function settingProblems(settings: ServerSettings): string[] {
  const problems: string[] = [];
  if (settings.logBin !== "ON" && settings.logBin !== "1") problems.push(`binary logging is off (log_bin=${settings.logBin || "OFF"}): start the server with log_bin (and a server_id)`);
  if (settings.binlogFormat !== "ROW") problems.push(`binlog_format is ${settings.binlogFormat || "unset"}: set binlog_format=ROW (SET GLOBAL binlog_format = 'ROW' and in the server's configuration)`);
  if (settings.binlogRowImage !== "FULL") problems.push(`binlog_row_image is ${settings.binlogRowImage || "unset"}: set binlog_row_image=FULL, so every change carries the whole row before and after`);
  if (settings.transactionCompression === "ON" || settings.transactionCompression === "1") {
    problems.push("binlog_transaction_compression is ON: set binlog_transaction_compression=OFF (compressed transactions leave row changes without binlog positions of their own)");
  }
  if (settings.logBinCompress === "ON" || settings.logBinCompress === "1") problems.push("log_bin_compress is ON: set log_bin_compress=OFF");
  if (settings.serverId === 0) problems.push("server_id is 0: a server with binary logging needs a non-zero server_id");
  return problems;
}

export function checkServerSettings(settings: ServerSettings, context: ErrorContext): void {
  const problems = settingProblems(settings);
  if (problems.length === 0) return;
  throw new SluiceError(`the ${settings.flavor === "mariadb" ? "MariaDB" : "MySQL"} server ${settings.version} cannot be captured: ${problems.join("; ")}`, {
    code: "MYSQL_SETTINGS",
    context,
  });
}
