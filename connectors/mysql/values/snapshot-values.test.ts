import assert from "node:assert/strict";
import { test } from "node:test";
import { snapshotDecoder } from "./snapshot-values.ts";

test("a ZEROFILL DECIMAL's text as SELECT pads it ('00000012.30') decodes to the digits the binlog gives ('12.30')", () => {
  const decode = snapshotDecoder({ name: "d", dbType: "decimal(10,2) unsigned", nullable: true, charset: null }, "null");
  assert.deepEqual(["00000012.30", "00000000.00", "12345678.91", "0000000001"].map((text) => decode(Buffer.from(text))), ["12.30", "0.00", "12345678.91", "1"]);
  const signed = snapshotDecoder({ name: "d", dbType: "decimal(5,2)", nullable: true, charset: null }, "null");
  assert.deepEqual(["-999.99", "0.50", "-0.50"].map((text) => signed(Buffer.from(text))), ["-999.99", "0.50", "-0.50"]);
});
