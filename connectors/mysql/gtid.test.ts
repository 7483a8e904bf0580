import assert from "node:assert/strict";
import { test } from "node:test";
import { MariadbGtidPosition, MysqlGtidSet, readSerializedSigned, readSerializedUnsigned } from "./gtid.ts";
import { GtidState, gtidText } from "./gtid-state.ts";
import { BinaryReader } from "./protocol/binary-reader.ts";

const UUID = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

test("MySQL GTID sets: parse, merge intervals, print in MySQL's form, with tags", () => {
  const set = MysqlGtidSet.parse(`${UUID.toUpperCase()}:1-5:7, ${UUID}:6,aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee:3:mytag:1-2`);
  assert.equal(set.toString(), `${UUID}:1-7,aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee:3:mytag:1-2`);
  set.add({ uuid: UUID, tag: "", gno: 9n });
  assert.equal(set.toString(), `${UUID}:1-7:9,aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee:3:mytag:1-2`);
  assert.ok(set.contains({ uuid: UUID, tag: "", gno: 6n }));
  assert.ok(!set.contains({ uuid: UUID, tag: "", gno: 8n }));
  assert.equal(set.hasTags, true);
  assert.throws(() => MysqlGtidSet.parse("nope:1"), SyntaxError);
});

test("MySQL GTID sets: the COM_BINLOG_DUMP_GTID encoding (end exclusive) decodes back", () => {
  const set = MysqlGtidSet.parse(`${UUID}:1-5:7`);
  const bytes = set.encode();
  assert.equal(bytes.length, 8 + 16 + 8 + 2 * 16);
  assert.equal(bytes.readBigUInt64LE(0), 1n);
  assert.equal(bytes.subarray(8, 24).toString("hex"), UUID.replaceAll("-", ""));
  assert.deepEqual([bytes.readBigInt64LE(32), bytes.readBigInt64LE(40), bytes.readBigInt64LE(48), bytes.readBigInt64LE(56)], [1n, 6n, 7n, 8n]);
  assert.equal(MysqlGtidSet.decode(new BinaryReader(bytes)).toString(), set.toString());
  assert.throws(() => MysqlGtidSet.parse(`${UUID}:t:1`).encode(), RangeError);
});

test("MariaDB GTID positions keep the last GTID per domain", () => {
  const position = MariadbGtidPosition.parse("0-1-100, 2-5-7");
  position.update({ domain: 0, server: 2, seq: 101n });
  position.update({ domain: 1, server: 1, seq: 1n });
  assert.equal(position.toString(), "0-2-101,1-1-1,2-5-7");
  assert.throws(() => MariadbGtidPosition.parse("0-1"), SyntaxError);
});

test("GTID state: a transaction's GTID joins when it ends; the file's list applies when nothing is known", () => {
  const state = new GtidState("mariadb", null);
  assert.equal(state.toString(), null);
  state.adoptFileStart([{ domain: 0, server: 1, seq: 5n }]);
  assert.equal(state.toString(), "0-1-5");
  state.adoptFileStart([{ domain: 0, server: 1, seq: 1n }]);
  assert.equal(state.toString(), "0-1-5");
  state.add({ domain: 0, server: 1, seq: 6n });
  assert.equal(state.toString(), "0-1-6");
  const mysql = new GtidState("mysql", `${UUID}:1-3`);
  mysql.add({ uuid: UUID, tag: "", gno: 4n });
  assert.equal(mysql.toString(), `${UUID}:1-4`);
  assert.equal(gtidText({ uuid: UUID, tag: "t", gno: 4n }), `${UUID}:t:4`);
  assert.equal(gtidText({ domain: 0, server: 1, seq: 4n }), "0-1-4");
});

test("MySQL 8.3 serialization integers: byte count from trailing ones, zigzag for signed", () => {
  const read = (hexText: string) => new BinaryReader(Buffer.from(hexText, "hex"));
  assert.equal(readSerializedUnsigned(read("0a")), 5);
  assert.equal(readSerializedUnsigned(read("2502")), 0x89);
  assert.equal(readSerializedUnsigned(read("430f0b")), 90600);
  assert.equal(readSerializedSigned(read("0c")), 3n);
  assert.equal(readSerializedSigned(read("02")), -1n);
});
