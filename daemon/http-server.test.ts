import assert from "node:assert/strict";
import { request } from "node:http";
import type { ServerResponse } from "node:http";
import { connect } from "node:net";
import type { Socket } from "node:net";
import { after, before, test } from "node:test";
import { createLogger } from "../runtime/logger.ts";
import { AccessPolicy } from "./admin-auth.ts";
import { HttpServer, sendJson } from "./http-server.ts";

const LIMIT = 64 * 1024;
const server = new HttpServer(createLogger("silent"), { maxBodyBytes: LIMIT });
let port = 0;
let handled = 0;

before(async () => {
  server.route("POST", "/echo", async (_req, res, body) => {
    handled++;
    sendJson(res, 200, { bytes: (await body()).length });
  });
  server.mount("/prefix", async (_req, res, body) => {
    handled++;
    sendJson(res, 200, { bytes: (await body()).length });
    return true;
  });
  port = (await server.listen("127.0.0.1", 0)).port;
});
after(() => server.close());

/** Sends the head of a request declaring `declared` body bytes and only `sent` of them; resolves with what the server answers. */
function declareAndSendPart(path: string, declared: number, sent: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => {
      socket.write(`POST ${path} HTTP/1.1\r\nHost: sluice\r\nContent-Length: ${declared}\r\n\r\n`);
      socket.write(Buffer.alloc(sent, 120));
    });
    let answer = "";
    socket.on("data", (data: Buffer) => (answer += data.toString("utf8")));
    socket.on("close", () => resolve(answer));
    socket.on("error", reject);
  });
}

test("a body declared larger than http.max_body_bytes is answered 413 without a handler reading it, whatever the endpoint", async () => {
  for (const path of ["/echo", "/prefix/x", "/nowhere"]) {
    const before = handled;
    // 300 MiB announced, 64 KiB sent: once the client stops sending, the answer comes and the connection closes.
    const answer = await declareAndSendPart(path, 300 * 2 ** 20, 64 * 1024);
    assert.match(answer, /^HTTP\/1\.1 413 /, path);
    assert.match(answer, /"code":"HTTP_BODY_TOO_LARGE"/, path);
    assert.match(answer, /the request body \(314572800 bytes\) is larger than the 65536 bytes this server takes \(http.max_body_bytes\)/, path);
    assert.equal(handled, before, `no handler ran for ${path}`);
  }
});

test("a client that keeps sending a refused body reads its 413, never a reset connection", async () => {
  const body = Buffer.alloc(8 * 2 ** 20, 120);
  for (let attempt = 0; attempt < 5; attempt++) {
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port, method: "POST", path: "/echo", agent: false, headers: { "content-length": body.length } }, (res) => {
        let text = "";
        res.on("data", (data: Buffer) => (text += data.toString("utf8")));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on("error", reject);
      req.end(body);
    });
    assert.equal(answer.status, 413);
    assert.match(answer.body, /"error_code":413/, "Confluent's error body too, for the schema registry's clients");
  }
});

test("a chunked body (no Content-Length) is cut at the limit with 413; one within it is read", async () => {
  const post = (chunks: number) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port, method: "POST", path: "/echo", headers: { "transfer-encoding": "chunked" } }, (res) => {
        let body = "";
        res.on("data", (data: Buffer) => (body += data.toString("utf8")));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject);
      let sent = 0;
      const writeMore = () => {
        while (sent < chunks) {
          sent++;
          if (!req.write(Buffer.alloc(16 * 1024, 97))) {
            req.once("drain", writeMore);
            return;
          }
        }
        req.end();
      };
      writeMore();
    });
  assert.deepEqual(await post(2), { status: 200, body: JSON.stringify({ bytes: 32 * 1024 }) });
  const refused = await post(64);
  assert.equal(refused.status, 413);
  assert.match(refused.body, /is larger than the 65536 bytes this server takes/);
});

/** Opens a TCP connection; resolves once connected, with a promise of everything the server sends until it closes the connection. */
function openConnection(at: number): Promise<{ socket: Socket; closed: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(at, "127.0.0.1");
    let received = "";
    socket.on("data", (data: Buffer) => (received += data.toString("utf8")));
    const closed = new Promise<string>((done) => socket.once("close", () => done(received)));
    socket.once("error", () => undefined);
    socket.once("connect", () => resolve({ socket, closed }));
    socket.once("error", reject);
  });
}

/** Sends a whole request on an open connection and resolves with the answer's first line. */
function ask(socket: Socket, path: string): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    const onData = (data: Buffer) => {
      text += data.toString("utf8");
      if (!text.includes("\r\n\r\n")) return;
      socket.off("data", onData);
      resolve(text.split("\r\n")[0]!);
    };
    socket.on("data", onData);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  });
}

test("connections past the listener's limit are closed as they arrive (a flood of idle connections ran the main heap out of memory); those within it are served", { timeout: 30_000 }, async () => {
  const limited = new HttpServer(createLogger("silent"), { connections: { maxConnections: 8 } });
  limited.route("GET", "/ping", (_req, res) => sendJson(res, 200, { ok: true }));
  const at = (await limited.listen("127.0.0.1", 0)).port;
  try {
    const kept = await Promise.all(Array.from({ length: 8 }, () => openConnection(at)));
    // Each answered: the server has accepted all eight.
    for (const { socket } of kept) assert.equal(await ask(socket, "/ping"), "HTTP/1.1 200 OK");
    const extra = await Promise.all(Array.from({ length: 20 }, () => openConnection(at).catch(() => null)));
    const answers = await Promise.all(extra.map((connection) => connection?.closed ?? ""));
    assert.deepEqual(answers, Array.from({ length: 20 }, () => ""), "each connection past the limit closed without an answer");
    assert.equal(await ask(kept[3]!.socket, "/ping"), "HTTP/1.1 200 OK", "the connections within the limit go on");
    for (const { socket } of kept) socket.destroy();
  } finally {
    limited.dropConnections();
    await limited.close();
  }
});

test("a request whose head never ends is cut with 408 after the headers timeout, one whose body never ends after the request timeout; a slow handler is not cut", { timeout: 30_000 }, async () => {
  const timed = new HttpServer(createLogger("silent"), { connections: { headersTimeoutMs: 300, requestTimeoutMs: 900 } });
  timed.route("POST", "/echo", async (_req, res, body) => sendJson(res, 200, { bytes: (await body()).length }));
  timed.route("GET", "/slow", async (_req, res) => {
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    sendJson(res, 200, { ok: true });
  });
  const at = (await timed.listen("127.0.0.1", 0)).port;
  try {
    // Slowloris: the head a byte at a time, never finished.
    const head = await openConnection(at);
    const trickle = setInterval(() => head.socket.write("a"), 50);
    head.socket.write("GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ");
    assert.match(await head.closed, /^HTTP\/1\.1 408 /);
    clearInterval(trickle);
    // A body that never ends.
    const body = await openConnection(at);
    const drip = setInterval(() => body.socket.write("x"), 50);
    body.socket.write("POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n");
    assert.match(await body.closed, /^HTTP\/1\.1 408 /);
    clearInterval(drip);
    // A request received whole is not cut while its handler works (a rebuild answers when it is done).
    const slow = await openConnection(at);
    assert.equal(await ask(slow.socket, "/slow"), "HTTP/1.1 200 OK");
    slow.socket.destroy();
  } finally {
    timed.dropConnections();
    await timed.close();
  }
});

test("request bodies held at once, all connections together, are bounded: past the budget a body is answered 503 with Retry-After once sent, never read; a refused request's body holds nothing", { timeout: 30_000 }, async () => {
  const token = "bodies-test-token-0123456789";
  const access = new AccessPolicy({ publicPaths: [], tokens: { admin: token } });
  // Room for two bodies of the largest size at once.
  const bounded = new HttpServer(createLogger("silent"), { maxBodyBytes: LIMIT, heldBodyBytes: 2 * LIMIT, access });
  let reading = 0;
  bounded.route("POST", "/echo", async (_req, res, body) => {
    reading++;
    sendJson(res, 200, { bytes: (await body()).length });
  });
  const at = (await bounded.listen("127.0.0.1", 0)).port;
  const head = (auth: boolean, length: string) => `POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth ? `Authorization: Bearer ${token}\r\n` : ""}${length}\r\n`;
  const firstLine = async (connection: { closed: Promise<string> }) => (await connection.closed).split("\r\n")[0];
  try {
    // Clients without the token each send half of a largest body and stop: refused, read and dropped, nothing held.
    const refused = await Promise.all(Array.from({ length: 4 }, () => openConnection(at)));
    for (const { socket } of refused) socket.write(head(false, `Content-Length: ${LIMIT}\r\n`) + "x".repeat(LIMIT / 2));
    // Two clients with it do the same: their bodies take the budget while they are sent.
    const held = await Promise.all(Array.from({ length: 2 }, () => openConnection(at)));
    for (const { socket } of held) socket.write(head(true, `Content-Length: ${LIMIT}\r\nConnection: close\r\n`) + "x".repeat(LIMIT / 2));
    while (reading < 2) await new Promise((resolve) => setTimeout(resolve, 10));
    // A third body, sent whole (declared, or chunked), finds no room: 503 once it has been sent, its handler never gets it.
    const third = await openConnection(at);
    third.socket.write(head(true, `Content-Length: ${LIMIT}\r\nConnection: close\r\n`) + "x".repeat(LIMIT));
    const answer = await third.closed;
    assert.match(answer, /^HTTP\/1\.1 503 /);
    assert.match(answer, /\r\nretry-after: 1\r\n/i);
    assert.match(answer, /"code":"HTTP_BODIES_BUSY"/);
    const chunked = await openConnection(at);
    chunked.socket.write(`${head(true, "Transfer-Encoding: chunked\r\nConnection: close\r\n")}${(LIMIT / 2).toString(16)}\r\n${"x".repeat(LIMIT / 2)}\r\n0\r\n\r\n`);
    assert.equal(await firstLine(chunked), "HTTP/1.1 503 Service Unavailable");
    // The held bodies, once ended, are answered; the room they held is given back.
    for (const { socket } of held) socket.end("x".repeat(LIMIT / 2));
    for (const connection of held) assert.equal(await firstLine(connection), "HTTP/1.1 200 OK");
    const after = await openConnection(at);
    after.socket.write(head(true, `Content-Length: ${LIMIT}\r\nConnection: close\r\n`) + "x".repeat(LIMIT));
    assert.match(await after.closed, /^HTTP\/1\.1 200 [^]*\{"bytes":65536\}$/);
    for (const { socket } of refused) socket.destroy();
    for (const connection of refused) assert.equal(await firstLine(connection), "HTTP/1.1 401 Unauthorized");
  } finally {
    bounded.dropConnections();
    await bounded.close();
  }
});

test("a connection with more pipelined requests in progress than the server takes is cut (their objects ran the main heap out of memory); others are served", { timeout: 30_000 }, async () => {
  const piped = new HttpServer(createLogger("silent"));
  let handled = 0;
  piped.route("GET", "/ping", (_req, res) => {
    handled++;
    sendJson(res, 200, { ok: true });
  });
  const at = (await piped.listen("127.0.0.1", 0)).port;
  try {
    // 3,000 requests in one write, read ahead of their answers by the server.
    const flood = await openConnection(at);
    flood.socket.write("GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(3_000));
    const received = await flood.closed;
    const answered = received.split("HTTP/1.1 200 OK").length - 1;
    assert.ok(answered <= 32 && handled <= 32, `the connection cut at 32 requests in progress: ${answered} answered, ${handled} handled`);
    // Thirty-two at once are served.
    const fair = await openConnection(at);
    fair.socket.write("GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(31) + "GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    assert.equal((await fair.closed).split("HTTP/1.1 200 OK").length - 1, 32);
  } finally {
    piped.dropConnections();
    await piped.close();
  }
});

test("requests in progress on all connections together are bounded: past the limit a connection sending a request ahead of its answer is cut (16,000 pipelined GET /metrics ran the main heap out of memory), while one request at a time is still served (not reading any connection let clients that read nothing stall every one)", { timeout: 30_000 }, async () => {
  const limit = 64;
  const bounded = new HttpServer(createLogger("silent"), { maxRequestsInProgress: limit });
  const held: ServerResponse[] = [];
  bounded.route("GET", "/hold", (_req, res) => void held.push(res));
  bounded.route("GET", "/ping", (_req, res) => sendJson(res, 200, { ok: true }));
  const at = (await bounded.listen("127.0.0.1", 0)).port;
  const hold = "GET /hold HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  const ping = "GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  const lastPing = "GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  try {
    const clients = await Promise.all(Array.from({ length: 20 }, () => openConnection(at)));
    for (const { socket } of clients) socket.write(hold.repeat(31) + "GET /hold HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    // Until nothing more arrives for 300 ms: all 640 without the bound.
    let seen = -1;
    while (bounded.inProgressCount !== seen) {
      seen = bounded.inProgressCount;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    assert.ok(seen >= limit && seen <= limit + 20, `${seen} requests in progress at once, limit ${limit} (each connection may send one past it)`);
    // Held, unanswered: one request at a time is served, a request sent ahead of an answer is cut.
    const single = await openConnection(at);
    single.socket.write(lastPing);
    assert.equal((await single.closed).split("HTTP/1.1 200 OK").length - 1, 1, "a single request is answered while the limit is reached");
    const ahead = await openConnection(at);
    ahead.socket.write(ping + lastPing);
    assert.ok((await ahead.closed).split("HTTP/1.1 200 OK").length - 1 <= 1, "a connection sending a request ahead of its answer is cut while the limit is reached");
    // Answering the held ones: every connection got all 32 answers or was cut.
    const answers = Promise.all(clients.map(({ closed }) => closed));
    const answering = setInterval(() => {
      for (const res of held.splice(0)) sendJson(res, 200, { ok: true });
    }, 5);
    const counts = (await answers).map((text) => text.split("HTTP/1.1 200 OK").length - 1);
    clearInterval(answering);
    assert.ok(counts.some((n) => n < 32), `some connections were cut: ${counts.join(",")}`);
    assert.equal(counts.reduce((sum, n) => sum + n, 0), seen, "every request taken in was answered");
    assert.equal(bounded.inProgressCount, 0);
    // Below the limit again, pipelining is served.
    const after = await openConnection(at);
    after.socket.write(ping.repeat(31) + lastPing);
    assert.equal((await after.closed).split("HTTP/1.1 200 OK").length - 1, 32);
  } finally {
    bounded.dropConnections();
    await bounded.close();
  }
});

test("a connection's pipelined requests are handled one after the other, each once the answer before it is sent: a client that reads nothing holds one answer", { timeout: 30_000 }, async () => {
  const serial = new HttpServer(createLogger("silent"));
  let handled = 0;
  // 16 MiB: loopback socket buffers (up to 32 + 4 MiB here) take two at most, so the rest stay unsent.
  const big = "x".repeat(16 * 2 ** 20);
  serial.route("GET", "/big", (_req, res) => {
    handled++;
    res.writeHead(200, { "content-type": "text/plain", "content-length": big.length });
    res.end(big);
  });
  const at = (await serial.listen("127.0.0.1", 0)).port;
  try {
    const client = await openConnection(at);
    client.socket.pause();
    client.socket.write("GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(9) + "GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    while (handled < 1) await new Promise((resolve) => setTimeout(resolve, 10));
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.ok(handled <= 4, `${handled} of 10 handled while the client read nothing`);
    client.socket.resume();
    const received = await client.closed;
    assert.equal(received.split("HTTP/1.1 200 OK").length - 1, 10);
    assert.equal(handled, 10);
  } finally {
    serial.dropConnections();
    await serial.close();
  }
});

/** A server whose GET /gate is answered only when the test says (a slow request a connection's next ones wait behind). */
async function gatedServer(options: ConstructorParameters<typeof HttpServer>[1] = {}) {
  const gated = new HttpServer(createLogger("silent"), options);
  const waiting: { res: ServerResponse; closed: Promise<void> }[] = [];
  let arrived: () => void = () => undefined;
  gated.route("GET", "/gate", (_req, res) => {
    waiting.push({ res, closed: new Promise((done) => res.once("close", done)) });
    arrived();
  });
  const at = (await gated.listen("127.0.0.1", 0)).port;
  /** Resolves with the gate request's answer once one more has arrived. */
  const nextGate = () => new Promise<{ res: ServerResponse; closed: Promise<void> }>((resolve) => (arrived = () => resolve(waiting.at(-1)!)));
  return { gated, at, nextGate };
}

const gate = "GET /gate HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

test("a pipelined request whose connection closes while it waits for its turn is dropped, not handled: its body holds nothing of the budget (it waited for ever for a body that never came)", { timeout: 30_000 }, async () => {
  // Room for one largest body.
  const { gated, at, nextGate } = await gatedServer({ maxBodyBytes: LIMIT, heldBodyBytes: LIMIT });
  let reads = 0;
  gated.route("POST", "/echo", async (_req, res, body) => {
    reads++;
    sendJson(res, 200, { bytes: (await body()).length });
  });
  try {
    for (let i = 0; i < 3; i++) {
      const client = await openConnection(at);
      const gateArrived = nextGate();
      client.socket.write(`${gate}POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${LIMIT}\r\n\r\n${"x".repeat(100)}`);
      const held = await gateArrived;
      client.socket.destroy();
      await held.closed;
      // The turn of the request behind it has come (a turn of the event loop after the close).
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(reads, 0, "no handler ran for a request of a closed connection");
    const answer = await fetch(`http://127.0.0.1:${at}/echo`, { method: "POST", body: "x".repeat(LIMIT) });
    assert.equal(answer.status, 200, "a body of the whole budget is taken");
    assert.deepEqual(await answer.json(), { bytes: LIMIT });
  } finally {
    gated.dropConnections();
    await gated.close();
  }
});

test("the heads of a connection's requests waiting for their turn are bounded in bytes (16 KiB heads, 32 a connection, parsed ahead on 512 connections: ~256 MiB): past them the connection is cut; small ones are served in turn", { timeout: 30_000 }, async () => {
  const { gated, at, nextGate } = await gatedServer();
  gated.route("GET", "/ping", (_req, res) => sendJson(res, 200, { ok: true }));
  try {
    const heavy = await openConnection(at);
    const heavyGate = nextGate();
    heavy.socket.write(gate + `GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${"p".repeat(15 * 1024)}\r\n\r\n`.repeat(4));
    assert.equal(await heavy.closed, "", "cut without an answer while its first request is in progress");
    await (await heavyGate).closed;
    // Thirty small requests behind a slow one wait and are answered in turn.
    const light = await openConnection(at);
    const lightGate = nextGate();
    light.socket.write(gate + "GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(29) + "GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    sendJson((await lightGate).res, 200, { gate: true });
    assert.equal((await light.closed).split("HTTP/1.1 200 OK").length - 1, 31);
  } finally {
    gated.dropConnections();
    await gated.close();
  }
});

test("a request pipelined behind a slow one has http.request_timeout from its turn to send its body: a large body sent behind a slow request is read, and both are answered (the connection was cut with 408, the slow answer lost)", { timeout: 30_000 }, async () => {
  const timed = new HttpServer(createLogger("silent"), { maxBodyBytes: 4 * 2 ** 20, connections: { headersTimeoutMs: 300, requestTimeoutMs: 900 } });
  timed.route("GET", "/slow", async (_req, res) => {
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    sendJson(res, 200, { slow: true });
  });
  timed.route("POST", "/echo", async (_req, res, body) => sendJson(res, 200, { bytes: (await body()).length }));
  const at = (await timed.listen("127.0.0.1", 0)).port;
  try {
    const client = await openConnection(at);
    // More than the server reads ahead of a request's turn (its buffer), so most of it waits in the connection.
    const size = 2 * 2 ** 20;
    client.socket.write(`GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nPOST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: ${size}\r\n\r\n${"x".repeat(size)}`);
    const received = await client.closed;
    assert.equal(received.split("HTTP/1.1 200 OK").length - 1, 2, received.slice(0, 200));
    assert.match(received, /\{"slow":true\}/);
    assert.match(received, new RegExp(`\\{"bytes":${size}\\}$`));
    // A body its endpoint answered without reading is still bounded by the timeout: it never ends, the connection is cut.
    const drip = await openConnection(at);
    const dripping = setInterval(() => drip.socket.write("x"), 50);
    drip.socket.write("POST /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n");
    assert.match(await drip.closed, /^HTTP\/1\.1 404 /);
    clearInterval(dripping);
  } finally {
    timed.dropConnections();
    await timed.close();
  }
});

test("a 413 at an endpoint's own limit logs that limit, not http.max_body_bytes", async () => {
  const lines: string[] = [];
  const logged = new HttpServer(createLogger("warn", { write: (line: string) => lines.push(line) }), { maxBodyBytes: 4 * 2 ** 20 });
  logged.route("POST", "/small", async (_req, res, body) => sendJson(res, 200, { bytes: (await body(LIMIT)).length }));
  const { port: loggedPort } = await logged.listen("127.0.0.1", 0);
  try {
    const answer = await fetch(`http://127.0.0.1:${loggedPort}/small`, { method: "POST", body: Buffer.alloc(100_000, 97) });
    assert.equal(answer.status, 413);
    assert.match(await answer.text(), /larger than the 65536 bytes this endpoint takes/);
    const warning = lines.map((line) => JSON.parse(line) as { code?: string; limit?: number }).find((entry) => entry.code === "HTTP_BODY_TOO_LARGE");
    assert.equal(warning?.limit, LIMIT, "the limit the body was refused at");
  } finally {
    await logged.close();
  }
});
