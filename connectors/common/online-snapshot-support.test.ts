import assert from "node:assert/strict";
import { test } from "node:test";
import type { Row } from "../contracts.ts";
import { keyIdentity } from "./online-snapshot-support.ts";

test("key identities: equal keys match, and keys of different values or types never do (one-column fast path and JSON alike)", () => {
  assert.equal(keyIdentity(["id"], { id: 7 }), keyIdentity(["id"], { id: 7, other: "x" }), "only the key's columns count");
  assert.equal(keyIdentity(["a", "b"], { a: 1, b: "x" }), keyIdentity(["a", "b"], { b: "x", a: 1 }));
  const distinct: [readonly string[], Row][] = [
    [["id"], { id: 7 }],
    [["id"], { id: "7" }],
    [["id"], { id: 7n }],
    [["id"], { id: "7n" }],
    [["id"], { id: "#7" }],
    [["id"], { id: "[7]" }],
    [["id"], { id: null }],
    [["id"], { id: "" }],
    [["id"], { id: new Uint8Array([7]) }],
    [["id"], { id: "07" }],
    [["a", "b"], { a: 7, b: null }],
    [["a", "b"], { a: "7", b: null }],
    [["a", "b"], { a: 7, b: 8 }],
  ];
  const identities = distinct.map(([columns, key]) => keyIdentity(columns, key));
  assert.equal(new Set(identities).size, identities.length, `collision among ${JSON.stringify(identities)}`);
});
