import assert from "node:assert/strict";
import { test } from "node:test";
import { hex } from "../../postgres/protocol/hex-fixture.ts";
import { binlogDump, binlogDumpGtid, registerReplica } from "./replica-commands.ts";

test("COM_REGISTER_SLAVE", () => {
  assert.deepEqual(registerReplica(0x01020304, "h"), hex("15 04030201 01 68 00 00 0000 00000000 00000000"));
});

test("COM_BINLOG_DUMP: offset, flags, server id, file name", () => {
  assert.deepEqual(binlogDump(7, "b.000001", 4), Buffer.concat([hex("12 04000000 0000 07000000"), Buffer.from("b.000001")]));
});

test("COM_BINLOG_DUMP_GTID: through-GTID flag, no file, position 4, the encoded set", () => {
  const set = hex("0100000000000000");
  assert.deepEqual(binlogDumpGtid(7, set), hex("1e 0400 07000000 00000000 0400000000000000 08000000 0100000000000000"));
});
