/** Creating the log's schema when SQLite refuses the commit: the cause is kept, not hidden by a failed ROLLBACK. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { test } from "node:test";
import { SluiceError } from "../errors.ts";
import { prepareDatabase } from "./schema.ts";
import { topicLogError } from "./sqlite-errors.ts";

/** SQLite's error for SQLITE_FULL at a commit, after which it has already rolled the transaction back itself. */
function diskFullAtCommit(db: DatabaseSync): DatabaseSync {
  return new Proxy(db, {
    get(target, property) {
      if (property === "exec") {
        return (sql: string) => {
          if (sql === "COMMIT") {
            target.exec("ROLLBACK");
            throw Object.assign(new Error("database or disk is full"), { code: "ERR_SQLITE_ERROR", errcode: 13, errstr: "database or disk is full" });
          }
          target.exec(sql);
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

test("the disk full at the commit creating the schema (SQLite has rolled back already): the open fails as the retriable disk full, not as a failed ROLLBACK", () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-schema-full-"));
  const path = join(dir, "sluice.db");
  const db = new DatabaseSync(path);
  try {
    let failure: unknown;
    try {
      prepareDatabase(diskFullAtCommit(db), path);
    } catch (error) {
      failure = topicLogError(error, "open", path);
    }
    assert.ok(failure instanceof SluiceError, "the open failed");
    assert.equal(failure.code, "TOPIC_LOG_DISK_FULL", failure.message);
    assert.equal(failure.retriable, true);
    assert.equal(db.isTransaction, false);
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
