/**
 * A login the server refuses for the account's state (locked, blocked after failed logins, password expired) is a refused
 * login (MYSQL_AUTH_FAILED: waited out once the source ran, daemon/capture.ts), not a MYSQL_ERROR that stops the daemon.
 * mysql2 names MariaDB's errnos after unrelated MySQL errors (4151: ER_BULK_PARSER_INCOMPLETE_ESCAPE_SEQUENCE), so they
 * are told by errno. The account is locked here with ACCOUNT LOCK on a user of the test's own; max_password_errors is
 * global, so the blocked account (4150, seen live on MariaDB 10.11) is checked by its errno only.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { Connection } from "mysql2/promise";
import { toSluiceError } from "./mysql-errors.ts";
import { adminConnection, connectError, randomName, sourceConfig } from "./int-test-support.ts";

const user = randomName("locked");
let admin: Connection;

before(async () => {
  admin = await adminConnection();
  await admin.query(`CREATE USER '${user}'@'%' IDENTIFIED BY 'pw1' ACCOUNT LOCK`);
  await admin.query(`GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '${user}'@'%'`);
});

after(async () => {
  await admin.query(`DROP USER IF EXISTS '${user}'@'%'`);
  await admin.end();
});

test("a locked account's login is MYSQL_AUTH_FAILED, saying so and how to unlock it", async () => {
  const error = await connectError(sourceConfig({ tables: ["*.*"], user, password: "pw1" }));
  assert.equal(error.code, "MYSQL_AUTH_FAILED", error.message);
  assert.equal(error.retriable, false);
  assert.match(error.message, /refused the login: Access denied, this account is locked; .*ACCOUNT UNLOCK/);
});

test("MySQL's and MariaDB's other account refusals are told by errno: blocked after failed logins, locked (MySQL), password expired", () => {
  const cases = [
    { errno: 4150, code: "ER_BULK_PARSER_UNEXPECTED_CHAR_AFTER_COLUMN_TERMINATOR", message: "User is blocked because of too many credential errors; unblock with 'ALTER USER / FLUSH PRIVILEGES'" },
    { errno: 3118, code: "ER_ACCOUNT_HAS_BEEN_LOCKED", message: "Access denied for user 'sluice'@'localhost'. Account is locked." },
    { errno: 3955, code: "ER_USER_ACCESS_DENIED_FOR_USER_ACCOUNT_BLOCKED_BY_PASSWORD_LOCK", message: "Access denied for user 'sluice'@'localhost'. Account is blocked for 1 day(s) (1 day(s) remaining) due to 3 consecutive failed logins." },
    { errno: 1862, code: "ER_MUST_CHANGE_PASSWORD_LOGIN", message: "Your password has expired." },
    { errno: 1820, code: "ER_MUST_CHANGE_PASSWORD", message: "You must SET PASSWORD before executing this statement" },
  ];
  for (const { errno, code, message } of cases) {
    const error = toSluiceError(Object.assign(new Error(message), { errno, code, sqlState: "HY000" }), "connecting", { source: "my", server: "db:3306" });
    assert.equal(error.code, "MYSQL_AUTH_FAILED", `${errno}: ${error.message}`);
    assert.match(error.message, /refused the login/);
  }
});
