/**
 * The access policy's decisions (scopes, tokens, loopback) and the redaction of secrets, on their own.
 * Through the real daemon: test/e2e/admin-api.int.test.ts and test/e2e/secrets.int.test.ts.
 */
import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { hostname } from "node:os";
import { describe, test } from "node:test";
import { redact, rememberSecrets, secretValues } from "../config/redact.ts";
import { AccessPolicy, isLoopback, presentedToken } from "./admin-auth.ts";

const ADMIN = "admin-token-0123456789";
const READ = "read-token-0123456789";
const REGISTRY = "registry-token-0123456789";

/** `peer` null: a socket that no longer knows its peer (closed). */
function request(method: string, authorization?: string, peer: string | null = "127.0.0.1"): IncomingMessage {
  return { method, headers: authorization === undefined ? {} : { authorization }, socket: { remoteAddress: peer ?? undefined } } as unknown as IncomingMessage;
}

const policy = (tokens: { admin?: string; read?: string; registry?: string }) => new AccessPolicy({ publicPaths: ["/healthz", "/readyz", "/metrics"], registryPrefix: "/registry", tokens });

describe("access policy", () => {
  test("scopes: health, readiness and metrics public; GETs and queries read; the rest admin", () => {
    const p = policy({});
    assert.equal(p.scopeOf("GET", "/metrics"), "public");
    assert.equal(p.scopeOf("POST", "/metrics"), "admin");
    assert.equal(p.scopeOf("GET", "/status"), "read");
    assert.equal(p.scopeOf("POST", "/sinks/w/query"), "read");
    assert.equal(p.scopeOf("POST", "/sinks/w/rebuild"), "admin");
    assert.equal(p.scopeOf("POST", "/sinks/w/query/x"), "admin");
    assert.equal(p.scopeOf("DELETE", "/registry/subjects/s"), "admin");
  });

  test("tokens: missing or wrong 401, too small a scope 403, right one through; the registry token only on registry paths", () => {
    const p = policy({ admin: ADMIN, read: READ, registry: REGISTRY });
    assert.equal(p.check(request("GET"), "/status")?.status, 401);
    assert.match(p.check(request("GET"), "/status")!.headers["www-authenticate"]!, /^Bearer realm="sluice"$/);
    assert.equal(p.check(request("GET", `Bearer ${ADMIN}x`), "/status")?.status, 401);
    assert.equal(p.check(request("GET", `Bearer ${READ}`), "/status"), null);
    assert.equal(p.check(request("POST", `Bearer ${READ}`), "/sinks/w/rebuild")?.status, 403);
    assert.equal(p.check(request("POST", `Bearer ${ADMIN}`), "/sinks/w/rebuild"), null);
    assert.equal(p.check(request("POST", `Bearer ${REGISTRY}`), "/registry/subjects/s/versions"), null);
    assert.equal(p.check(request("GET", `Bearer ${REGISTRY}`), "/status")?.status, 403);
    const basic = `Basic ${Buffer.from(`client:${ADMIN}`).toString("base64")}`;
    assert.equal(p.check(request("DELETE", basic), "/registry/subjects/s"), null);
    assert.equal(p.check(request("GET", undefined, "192.0.2.7"), "/healthz"), null);
  });

  test("without an admin token: loopback clients only (IPv4, IPv6, mapped), others 403", () => {
    const p = policy({});
    assert.equal(p.loopbackOnly, true);
    for (const peer of ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"]) assert.equal(p.check(request("POST", undefined, peer), "/sinks/w/rebuild"), null, peer);
    for (const peer of ["192.0.2.7", "::ffff:192.0.2.7", "fd00::2", null]) assert.equal(p.check(request("GET", undefined, peer), "/status")?.status, 403, String(peer));
    assert.equal(isLoopback("128.0.0.1"), false);
  });

  test("a read token alone guards the read scope; the admin scope stays loopback-only", () => {
    const p = policy({ read: READ });
    assert.equal(p.check(request("GET"), "/status")?.status, 401);
    assert.equal(p.check(request("POST"), "/sinks/w/rebuild"), null);
    assert.equal(p.check(request("POST", undefined, "192.0.2.7"), "/sinks/w/rebuild")?.status, 403);
  });

  test("without a token, a loopback request a web page made is refused: an Origin (cross-site POST), a cross-site fetch, a Host name that is not this host's (DNS rebinding)", () => {
    const p = new AccessPolicy({ publicPaths: ["/healthz"], tokens: {}, hostNames: ["sluice.internal"] });
    const from = (method: string, headers: Record<string, string>) => ({ method, headers, socket: { remoteAddress: "127.0.0.1" } }) as unknown as IncomingMessage;
    // What a page on any site can send to 127.0.0.1 from the operator's browser: a form or no-cors fetch POST (the answer is unread, the action done).
    const csrf = p.check(from("POST", { host: "127.0.0.1:8080", origin: "https://evil.example", "content-type": "text/plain" }), "/sinks/w/rebuild");
    assert.equal(csrf?.status, 403);
    assert.match(csrf!.message, /web page/);
    assert.equal(p.check(from("POST", { host: "127.0.0.1:8080", origin: "null" }), "/sources/s/halted/skip")?.status, 403);
    assert.equal(p.check(from("GET", { host: "127.0.0.1:8080", "sec-fetch-site": "cross-site" }), "/status")?.status, 403);
    // A name of the attacker's that now resolves to 127.0.0.1: the page is same-origin with the daemon and reads its answers.
    const rebound = p.check(from("POST", { host: "rebind.evil.example:8080" }), "/sinks/w/query");
    assert.equal(rebound?.status, 403);
    assert.match(rebound!.message, /Host/);
    // What the CLI, curl, registry clients and a person typing the address send.
    for (const host of ["127.0.0.1:8080", "[::1]:8080", "localhost:8080", "LOCALHOST.:8080", "app.localhost", "sluice.internal:8080", hostname(), "192.0.2.7:8080"]) {
      assert.equal(p.check(from("POST", { host }), "/sinks/w/rebuild"), null, host);
    }
    assert.equal(p.check(from("GET", {}), "/status"), null);
    assert.equal(p.check(from("GET", { host: "localhost:8080", "sec-fetch-site": "none", "sec-fetch-mode": "navigate" }), "/status"), null);
    // Public endpoints stay open to anyone; a token (which no page can make a browser send) is not second-guessed.
    assert.equal(p.check(from("GET", { host: "rebind.evil.example", origin: "https://evil.example" }), "/healthz"), null);
    const withToken = new AccessPolicy({ publicPaths: [], tokens: { admin: ADMIN } });
    assert.equal(withToken.check(from("POST", { host: "sluice.example.com", origin: "https://console.example.com", authorization: `Bearer ${ADMIN}` }), "/sinks/w/rebuild"), null);
  });

  test("setTokens replaces the tokens at once", () => {
    const p = policy({ admin: ADMIN });
    p.setTokens({ admin: `${ADMIN}-new` });
    assert.equal(p.check(request("GET", `Bearer ${ADMIN}`), "/status")?.status, 401);
    assert.equal(p.check(request("GET", `Bearer ${ADMIN}-new`), "/status"), null);
  });

  test("presented token: Bearer, Basic password; anything else none", () => {
    assert.equal(presentedToken(request("GET", "Bearer abc")), "abc");
    assert.equal(presentedToken(request("GET", "bearer  abc ")), "abc");
    assert.equal(presentedToken(request("GET", `Basic ${Buffer.from("u:p:q").toString("base64")}`)), "p:q");
    assert.equal(presentedToken(request("GET", "Digest abc")), undefined);
    assert.equal(presentedToken(request("GET", "Bearer")), undefined);
  });
});

describe("redaction", () => {
  test("every secret of a config, as is, JSON-escaped, URL-encoded and as a Basic header's base64; short values left alone", () => {
    const config = {
      sources: [{ user: "cdc", password: 'pa"ss/word-42' }],
      sinks: [{ api_key: "key-abcdefgh", username: "elastic", password: "es-secret-1" }],
      http: { admin_token: "tok-0123456789abcdef" },
      schema_registry: { token: "short" },
    };
    rememberSecrets(secretValues(config));
    const line = JSON.stringify({ msg: 'login pa"ss/word-42 failed', header: `Basic ${Buffer.from("elastic:es-secret-1").toString("base64")}`, url: `x://h/?k=${encodeURIComponent('pa"ss/word-42')}`, more: "key-abcdefgh tok-0123456789abcdef short" });
    const out = redact(line);
    for (const secret of ['pa\\"ss/word-42', "es-secret-1", "key-abcdefgh", "tok-0123456789abcdef", Buffer.from("elastic:es-secret-1").toString("base64"), encodeURIComponent('pa"ss/word-42')]) {
      assert.ok(!out.includes(secret), `${secret} in ${out}`);
    }
    assert.match(out, /short/);
    assert.doesNotThrow(() => JSON.parse(out));
  });
});
