import assert from "node:assert/strict";
import { test } from "node:test";
import { binlogAt, formatAt, rowPosition, throughPosition as mysqlThrough } from "../mysql/positions.ts";
import { encodeResumeToken } from "../mysql/resume-token.ts";
import { parseLsn } from "../postgres/lsn.ts";
import { SNAPSHOT_INCOMPLETE, snapshotPosition, throughPosition as pgThrough } from "../postgres/positions.ts";
import { formatPosition } from "./position-text.ts";

test("PostgreSQL positions print as LSNs", () => {
  assert.equal(formatPosition("postgres", pgThrough(parseLsn("0/1CD6E7F0"))), "0/1CD6E7F0");
  assert.equal(formatPosition("postgres", pgThrough(0x16b374d848n)), "16/B374D848");
  assert.equal(formatPosition("postgres", { commit: parseLsn("0/1CD6E7F0"), change: parseLsn("0/1CD6E700") }), "0/1CD6E700 (commit 0/1CD6E7F0)");
  assert.equal(formatPosition("postgres", { ...snapshotPosition(parseLsn("0/3000060"), parseLsn("0/3000028")), resume: SNAPSHOT_INCOMPLETE }), "0/3000027 (commit 0/3000060), snapshot incomplete");
  assert.equal(formatPosition("postgres", pgThrough(0n)), "0/0");
});

test("MySQL/MariaDB positions print as binlog file:offset, with the base name and GTID state a checkpoint carries", () => {
  const token = (gtid: string | null, snapshotIncomplete = false) =>
    encodeResumeToken({ flavor: "mariadb", serverId: 1, file: "mariadb-bin.000003", offset: 6363, gtid, skipThrough: null, snapshotThresholds: {}, snapshotIncomplete });
  assert.equal(formatPosition("mysql", { ...mysqlThrough(binlogAt(3, 6363)), resume: token("0-1-103") }), "mariadb-bin.000003:6363, GTID 0-1-103");
  assert.equal(formatPosition("mysql", { ...mysqlThrough(binlogAt(3, 6363)), resume: token(null) }), "mariadb-bin.000003:6363");
  assert.equal(formatPosition("mysql", { ...mysqlThrough(binlogAt(3, 6363)), resume: token(null, true) }), "mariadb-bin.000003:6363, snapshot incomplete");
  // A row change read from the topic carries no resume token: the file shows by its number.
  assert.equal(formatPosition("mysql", rowPosition(binlogAt(42, 1000), binlogAt(42, 1107))), "*.000042:1107 (transaction at *.000042:1000)");
  assert.equal(formatPosition("mysql", { ...mysqlThrough(binlogAt(7, 4)), resume: "not a token" }), "*.000007:4");
});

test("a binlog coordinate takes the base name and digit count of any file of the same server", () => {
  assert.equal(formatAt(binlogAt(42, 1234), "mysql-bin.000040"), "mysql-bin.000042:1234");
  assert.equal(formatAt(binlogAt(1234567, 4), "binlog.000001"), "binlog.1234567:4");
  assert.equal(formatAt(binlogAt(5, 4), "host.name-bin.0000001"), "host.name-bin.0000005:4");
  assert.equal(formatAt(binlogAt(42, 1234)), "*.000042:1234");
});
