/**
 * Child process of json-body-heap.test.ts: an HttpServer with the daemon's JSON-reading endpoints
 * (an admin endpoint through readJsonObject, the schema registry), on a heap as small as the daemon's
 * main thread, holding some megabytes as the daemon does. Prints its port, then serves until killed.
 */
import { createLogger } from "../runtime/logger.ts";
import { LocalRegistry } from "../schema-registry/local-registry.ts";
import { openMemoryStore } from "../schema-registry/log-store.ts";
import { createRegistryHandler } from "../schema-registry/rest-handler.ts";
import { HttpServer, sendJson } from "./http-server.ts";
import { readJsonObject } from "./request-body.ts";

// What the daemon's main thread holds besides (its modules, pipelines, caches): ~20 MB.
const held = Array.from({ length: 20 }, (_, i) => new Array<{ i: number }>(125_000).fill({ i }));
const server = new HttpServer(createLogger("silent"));
server.route("GET", "/healthz", (_req, res) => sendJson(res, 200, { status: "ok", held: held.length }));
server.route("POST", "/admin", async (_req, res, body) => sendJson(res, 200, await readJsonObject(body, "{tables}", ["tables"])));
server.mount("/registry", createRegistryHandler({ registry: new LocalRegistry(await openMemoryStore()), prefix: "/registry" }));
const { port } = await server.listen("127.0.0.1", 0);
process.stdout.write(`${port}\n`);
