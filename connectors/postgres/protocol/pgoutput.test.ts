import { test } from "node:test";
import assert from "node:assert/strict";
import { UNCHANGED } from "../../contracts.ts";
import { decodePgoutput } from "./pgoutput.ts";
import { cstr, hex, utf8 } from "./hex-fixture.ts";

test("Begin", () => {
  assert.deepEqual(
    decodePgoutput(hex(`
      42                  # 'B'
      00000000 016b3a48   # final LSN 0/16B3A48
      0002 b7c1 d2e3 f405 # commit time, µs since 2000-01-01
      000004d2            # xid 1234
    `)),
    { tag: "begin", finalLsn: 0x16b3a48n, commitTime: 0x0002_b7c1_d2e3_f405n, xid: 1234 },
  );
});

test("Commit", () => {
  assert.deepEqual(
    decodePgoutput(hex(`
      43                  # 'C'
      00                  # flags
      00000000 016b3a48   # commit LSN
      00000000 016b3a78   # end LSN
      0002 b7c1 d2e3 f405 # commit time
    `)),
    { tag: "commit", flags: 0, commitLsn: 0x16b3a48n, endLsn: 0x16b3a78n, commitTime: 0x0002_b7c1_d2e3_f405n },
  );
});

test("Origin", () => {
  assert.deepEqual(
    decodePgoutput(hex(`
      4f                  # 'O'
      00000002 00000010   # origin LSN
      ${cstr("upstream")}
    `)),
    { tag: "origin", originLsn: 0x2_00000010n, name: "upstream" },
  );
});

test("Relation: key flags, type oids, modifiers; empty namespace is pg_catalog", () => {
  const relation = hex(`
    52                  # 'R'
    00004000            # relation id 16384
    ${cstr("public")}
    ${cstr("orders")}
    64                  # replica identity 'd'
    0003                # 3 columns
    01 ${cstr("id")} 00000014 ffffffff        # key, int8, no modifier
    00 ${cstr("total")} 000006a4 000a0006     # numeric(10,2): typmod ((10<<16)|2)+4
    00 ${cstr("note")} 00000413 00000068      # varchar(100): typmod 104
  `);
  assert.deepEqual(decodePgoutput(relation), {
    tag: "relation",
    relationId: 16384,
    namespace: "public",
    name: "orders",
    replicaIdentity: "d",
    columns: [
      { isKey: true, name: "id", typeOid: 20, typeModifier: -1 },
      { isKey: false, name: "total", typeOid: 1700, typeModifier: 0x000a0006 },
      { isKey: false, name: "note", typeOid: 1043, typeModifier: 104 },
    ],
  });
  const catalog = hex(`52 00000001 00 ${cstr("t")} 66 0000`);
  assert.equal((decodePgoutput(catalog) as { namespace: string }).namespace, "pg_catalog");
});

test("Type", () => {
  assert.deepEqual(decodePgoutput(hex(`59 00004001 ${cstr("public")} ${cstr("mood")}`)), {
    tag: "type",
    typeOid: 16385,
    namespace: "public",
    name: "mood",
  });
});

test("Insert: text, NULL and UTF-8 columns", () => {
  assert.deepEqual(
    decodePgoutput(hex(`
      49 00004000         # 'I', relation 16384
      4e                  # 'N'
      0003
      74 00000002 ${utf8("42")}
      6e                  # NULL
      74 00000007 ${utf8("zürich")}  # 7 bytes: ü is two
    `)),
    { tag: "insert", relationId: 16384, newTuple: ["42", null, "zürich"] },
  );
});

test("Update without old tuple, with old key ('K'), with old row ('O') and unchanged TOAST ('u')", () => {
  assert.deepEqual(decodePgoutput(hex(`55 00004000 4e 0002 74 00000001 ${utf8("1")} 75`)), {
    tag: "update",
    relationId: 16384,
    oldKey: null,
    oldTuple: null,
    newTuple: ["1", UNCHANGED],
  });
  assert.deepEqual(
    decodePgoutput(hex(`
      55 00004000
      4b 0002 74 00000001 ${utf8("1")} 6e   # 'K': key column, other NULL
      4e 0002 74 00000001 ${utf8("2")} 74 00000001 ${utf8("x")}
    `)),
    { tag: "update", relationId: 16384, oldKey: ["1", null], oldTuple: null, newTuple: ["2", "x"] },
  );
  assert.deepEqual(
    decodePgoutput(hex(`
      55 00004000
      4f 0002 74 00000001 ${utf8("1")} 74 00000001 ${utf8("a")}
      4e 0002 74 00000001 ${utf8("1")} 74 00000001 ${utf8("b")}
    `)),
    { tag: "update", relationId: 16384, oldKey: null, oldTuple: ["1", "a"], newTuple: ["1", "b"] },
  );
});

test("Delete with old key and with old row", () => {
  assert.deepEqual(decodePgoutput(hex(`44 00004000 4b 0002 74 00000001 ${utf8("7")} 6e`)), {
    tag: "delete",
    relationId: 16384,
    oldKey: ["7", null],
    oldTuple: null,
  });
  assert.deepEqual(decodePgoutput(hex(`44 00004000 4f 0001 74 00000001 ${utf8("7")}`)), {
    tag: "delete",
    relationId: 16384,
    oldKey: null,
    oldTuple: ["7"],
  });
  assert.throws(() => decodePgoutput(hex(`44 00004000 4e 0000`)), /delete: expected 'K' or 'O'/);
});

test("Truncate: options and relation ids", () => {
  assert.deepEqual(
    decodePgoutput(hex(`
      54                  # 'T'
      00000002            # 2 relations
      03                  # CASCADE | RESTART IDENTITY
      00004000 00004005
    `)),
    { tag: "truncate", cascade: true, restartIdentity: true, relationIds: [16384, 16389] },
  );
});

test("logical decoding Message: transactional flag, prefix and binary content", () => {
  assert.deepEqual(
    decodePgoutput(hex(`
      4d                  # 'M'
      00                  # not transactional
      00000000 016b3a48   # LSN
      ${cstr("sluice.heartbeat")}
      00000003 00ff10     # 3 content bytes
    `)),
    { tag: "message", transactional: false, lsn: 0x16b3a48n, prefix: "sluice.heartbeat", content: Buffer.from([0, 0xff, 0x10]) },
  );
  assert.equal((decodePgoutput(hex(`4d 01 0000000000000001 ${cstr("p")} 00000000`)) as { transactional: boolean }).transactional, true);
});

test("binary tuple columns are kept as bytes", () => {
  assert.deepEqual(decodePgoutput(hex(`49 00000001 4e 0001 62 00000002 beef`)), {
    tag: "insert",
    relationId: 1,
    newTuple: [{ binary: Buffer.from([0xbe, 0xef]) }],
  });
});

test("truncated and unknown messages fail loudly", () => {
  assert.throws(() => decodePgoutput(hex(`49 00004000 4e 0001 74 00000005 ${utf8("ab")}`)), /truncated message/);
  assert.throws(() => decodePgoutput(hex(`53 00000001`)), /unsupported pgoutput message type 'S'/);
  assert.throws(() => decodePgoutput(hex(`49 00004000 4e 0001 7a`)), /unknown kind 0x7a/);
  assert.throws(() => decodePgoutput(hex(`52 00000001 ${utf8("public")}`)), /unterminated string/);
});
