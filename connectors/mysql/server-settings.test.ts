import assert from "node:assert/strict";
import { test } from "node:test";
import { checkServerSettings, settingProblems } from "./server-settings.ts";
import type { ServerSettings } from "./server-settings.ts";

const GOOD: ServerSettings = {
  flavor: "mariadb",
  version: "10.11.19-MariaDB-log",
  serverId: 1,
  logBin: "ON",
  binlogFormat: "ROW",
  binlogRowImage: "FULL",
  binlogRowMetadata: "FULL",
  binlogChecksum: "CRC32",
  gtidMode: "ON",
  transactionCompression: "OFF",
  logBinCompress: "OFF",
};

test("accepts ROW format with FULL images, whatever the row metadata", () => {
  assert.deepEqual(settingProblems(GOOD), []);
  assert.deepEqual(settingProblems({ ...GOOD, binlogRowMetadata: "MINIMAL", binlogChecksum: "NONE" }), []);
});

test("refuses binlog settings that lose changes, naming each setting and its value, all at once", () => {
  const problems = settingProblems({ ...GOOD, binlogFormat: "MIXED", binlogRowImage: "MINIMAL", logBin: "OFF" });
  assert.equal(problems.length, 3);
  assert.match(problems[0]!, /log_bin/);
  assert.match(problems[1]!, /binlog_format is MIXED: set binlog_format=ROW/);
  assert.match(problems[2]!, /binlog_row_image is MINIMAL: set binlog_row_image=FULL/);
  assert.match(settingProblems({ ...GOOD, flavor: "mysql", transactionCompression: "ON" })[0]!, /binlog_transaction_compression=OFF/);
  assert.throws(
    () => checkServerSettings({ ...GOOD, binlogFormat: "STATEMENT" }, { source: "s" }),
    (error: Error & { code?: string; retriable?: boolean }) => error.code === "MYSQL_SETTINGS" && error.retriable === false && /binlog_format=ROW/.test(error.message),
  );
});
