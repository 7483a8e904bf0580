import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseSchema } from "./avro-parse.ts";
import { checkAgainstHistory, COMPATIBILITY_LEVELS, describeIncompatibility, isCompatibilityLevel } from "./compatibility-levels.ts";
import type { CompatibilityLevel, VersionedSchema } from "./compatibility-levels.ts";

const record = (fields: unknown[]) => parseSchema({ type: "record", name: "R", fields });

/** v1 → v2 and v2 → v3 are backward compatible, v1 → v3 is not: v3 needs `b`, which only v2 has. */
const BACKWARD_CHAIN = [
  record([{ name: "a", type: "int" }]),
  record([
    { name: "a", type: "int" },
    { name: "b", type: "string", default: "" },
  ]),
  record([
    { name: "a", type: "int" },
    { name: "b", type: "string" },
  ]),
];

/** v1 → v2 and v2 → v3 are forward compatible, v1 → v3 is not: v1 needs `c`, which v3 dropped. */
const FORWARD_CHAIN = [
  record([
    { name: "a", type: "int" },
    { name: "c", type: "int" },
  ]),
  record([
    { name: "a", type: "int" },
    { name: "c", type: "int", default: 0 },
  ]),
  record([{ name: "a", type: "int" }]),
];

function history(chain: ReturnType<typeof record>[], upTo: number): VersionedSchema[] {
  return chain.slice(0, upTo).map((schema, index) => ({ version: index + 1, schema }));
}

function verdicts(chain: ReturnType<typeof record>[]): Record<CompatibilityLevel, boolean> {
  const result = {} as Record<CompatibilityLevel, boolean>;
  for (const level of COMPATIBILITY_LEVELS) {
    result[level] = checkAgainstHistory(chain[2] as ReturnType<typeof record>, history(chain, 2), level).length === 0;
  }
  return result;
}

describe("compatibility levels", () => {
  it("knows the seven levels", () => {
    assert.deepEqual(COMPATIBILITY_LEVELS, ["BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE", "NONE"]);
    assert.ok(isCompatibilityLevel("FULL"));
    assert.ok(!isCompatibilityLevel("full"));
  });

  it("checks the chain step by step as compatible", () => {
    for (const chain of [BACKWARD_CHAIN, FORWARD_CHAIN]) {
      for (let step = 1; step < 3; step++) {
        const level = chain === BACKWARD_CHAIN ? "BACKWARD" : "FORWARD";
        assert.deepEqual(checkAgainstHistory(chain[step] as ReturnType<typeof record>, history(chain, step), level), [], `${level} step ${step}`);
      }
    }
  });

  it("BACKWARD checks the latest only; BACKWARD_TRANSITIVE every version", () => {
    assert.deepEqual(verdicts(BACKWARD_CHAIN), {
      BACKWARD: true,
      BACKWARD_TRANSITIVE: false,
      FORWARD: true,
      FORWARD_TRANSITIVE: true,
      FULL: true,
      FULL_TRANSITIVE: false,
      NONE: true,
    });
  });

  it("FORWARD checks the latest only; FORWARD_TRANSITIVE every version", () => {
    assert.deepEqual(verdicts(FORWARD_CHAIN), {
      BACKWARD: true,
      BACKWARD_TRANSITIVE: true,
      FORWARD: true,
      FORWARD_TRANSITIVE: false,
      FULL: true,
      FULL_TRANSITIVE: false,
      NONE: true,
    });
  });

  it("FULL needs both directions against the latest", () => {
    const v1 = record([{ name: "a", type: "int" }]);
    const addedWithoutDefault = record([
      { name: "a", type: "int" },
      { name: "b", type: "int" },
    ]);
    const removedWithoutDefault = record([]);
    assert.equal(checkAgainstHistory(addedWithoutDefault, [{ version: 1, schema: v1 }], "FORWARD").length, 0);
    assert.equal(checkAgainstHistory(addedWithoutDefault, [{ version: 1, schema: v1 }], "FULL").length, 1);
    assert.equal(checkAgainstHistory(removedWithoutDefault, [{ version: 1, schema: v1 }], "BACKWARD").length, 0);
    assert.equal(checkAgainstHistory(removedWithoutDefault, [{ version: 1, schema: v1 }], "FULL").length, 1);
  });

  it("NONE accepts anything", () => {
    assert.deepEqual(checkAgainstHistory(parseSchema("string"), [{ version: 1, schema: record([]) }], "NONE"), []);
  });

  it("says which version breaks, in which direction", () => {
    const [problem] = checkAgainstHistory(BACKWARD_CHAIN[2] as ReturnType<typeof record>, history(BACKWARD_CHAIN, 2), "BACKWARD_TRANSITIVE");
    assert.ok(problem);
    assert.equal(problem.version, 1);
    assert.equal(problem.direction, "backward");
    assert.equal(
      describeIncompatibility(problem, "BACKWARD_TRANSITIVE"),
      "field `b`: the reader has it without a default value, and data written without it cannot be read (READER_FIELD_MISSING_DEFAULT_VALUE at /fields/1; the new schema cannot read data written with version 1; compatibility BACKWARD_TRANSITIVE)",
    );
    const [forward] = checkAgainstHistory(FORWARD_CHAIN[2] as ReturnType<typeof record>, history(FORWARD_CHAIN, 2), "FORWARD_TRANSITIVE");
    assert.equal(forward?.direction, "forward");
    assert.match(describeIncompatibility(forward as NonNullable<typeof forward>, "FORWARD_TRANSITIVE"), /version 1 cannot read data written with the new schema/);
  });
});
