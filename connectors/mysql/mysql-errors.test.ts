import assert from "node:assert/strict";
import { test } from "node:test";
import { connectionsNeeded, toSluiceError } from "./mysql-errors.ts";

function serverError(message: string, errno: number, code: string): Error {
  return Object.assign(new Error(message), { errno, code });
}

test("an account at its MAX_USER_CONNECTIONS: retried, and the message says how many connections this config opens", () => {
  const needed = connectionsNeeded({ parallelism: 4, signal_table: "d.signals" });
  assert.equal(needed, 11, "catalog and binlog, 4 initial-snapshot connections, 4 online-snapshot lanes, the signal table");
  assert.equal(connectionsNeeded({ parallelism: 1 }), 4);
  const limit = serverError("User 'cdc' has exceeded the 'max_user_connections' resource (current value: 3)", 1226, "ER_USER_LIMIT_REACHED");
  const error = toSluiceError(limit, "cannot open the binlog connection", { source: "maria", connectionsNeeded: needed });
  assert.equal(error.retriable, true);
  assert.match(error.message, /exceeded the 'max_user_connections' resource/);
  assert.match(error.message, /up to 11 connections with this config/);
  assert.match(error.message, /MAX_USER_CONNECTIONS .* raise it .* or lower snapshot\.parallelism/);
  // Without the count (a context that does not carry it) the formula; the server-wide limit gets the same remedy.
  const global = toSluiceError(serverError("User cdc already has more than 'max_user_connections' active connections", 1203, "ER_TOO_MANY_USER_CONNECTIONS"), "cannot connect", {});
  assert.equal(global.retriable, true);
  assert.match(global.message, /up to 2 \+ 2 × snapshot\.parallelism connections/);
  // The hourly limits heal on their own: retried, with no word of connections.
  const hourly = toSluiceError(serverError("User 'cdc' has exceeded the 'max_queries_per_hour' resource (current value: 10)", 1226, "ER_USER_LIMIT_REACHED"), "cannot connect", { connectionsNeeded: needed });
  assert.equal(hourly.retriable, true);
  assert.doesNotMatch(hourly.message, /connections with this config/);
});
