/**
 * Confluent Schema Registry's REST API over a LocalRegistry, as a handler the daemon's HTTP server
 * can mount at root or under a prefix. It answers `false` for paths that are not the registry's.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { LocalRegistry, SchemaRequest } from "./local-registry.ts";
import { parseVersionSpec } from "./local-registry.ts";
import { RegistryError } from "./registry-errors.ts";
import type { SubjectVersion } from "./registry.ts";
import { isAuthorized, readJsonObject, REGISTRY_CONTENT_TYPE, sendError, sendJson } from "./rest-http.ts";

/**
 * `readBody`: the host server's reader of the request's body (the daemon's counts the bodies it holds
 * at once); what it refuses is thrown back to the host, which answers it. Without one, the handler
 * reads the body itself, at most `maxBodyBytes`.
 */
export type RegistryHandler = (req: IncomingMessage, res: ServerResponse, readBody?: () => Promise<Buffer>) => Promise<boolean>;

export interface RegistryHandlerOptions {
  /** The registry served, or a function giving the one to serve now (the daemon swaps in each capture term's). */
  readonly registry: LocalRegistry | (() => LocalRegistry);
  /** Mount point, e.g. "/schema-registry"; empty or absent mounts at root. */
  readonly prefix?: string;
  /** When set, every request needs `Authorization: Bearer <token>` (or Basic with the token as password). */
  readonly authToken?: string;
  /** Largest request body (default 4 MiB, room for the largest schema JSON-escaped); a larger one is answered 413. */
  readonly maxBodyBytes?: number;
  /** Called when a GET finds no such schema, subject or version (another process may have registered it since); the GET is then answered again. */
  readonly refresh?: () => Promise<void>;
}

type Method = "GET" | "POST" | "PUT" | "DELETE";

interface Call {
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  body(): Promise<Record<string, unknown>>;
}

/** A JSON body, or the schema text itself (the `/schema` endpoints). */
type Reply = { readonly json: unknown } | { readonly raw: string };

interface Route {
  readonly pattern: readonly string[];
  readonly methods: Partial<Record<Method, (call: Call) => Promise<Reply>>>;
}

const REGISTRY_ROOTS = new Set(["subjects", "schemas", "compatibility", "config", "mode"]);
const MISSES = new Set(["SCHEMA_NOT_FOUND", "SUBJECT_NOT_FOUND", "VERSION_NOT_FOUND"]);

export function createRegistryHandler(options: RegistryHandlerOptions): RegistryHandler {
  const prefix = (options.prefix ?? "").replace(/\/+$/, "");
  const served = options.registry;
  const current = typeof served === "function" ? served : () => served;
  let routes: Route[] = [];
  let routesOf: LocalRegistry | null = null;
  const routesNow = (): Route[] => {
    const registry = current();
    if (registry !== routesOf) [routes, routesOf] = [registryRoutes(registry), registry];
    return routes;
  };
  const maxBodyBytes = options.maxBodyBytes ?? 4 * 1024 * 1024;
  return async (req, res, readBody) => {
    let hostRefusal: unknown;
    const hostRead = readBody && (() => readBody().catch((error: unknown) => Promise.reject((hostRefusal = error))));
    const url = new URL(req.url ?? "/", "http://registry.invalid");
    let path = url.pathname;
    if (prefix !== "") {
      if (path !== prefix && !path.startsWith(`${prefix}/`)) return false;
      path = path.slice(prefix.length) || "/";
    }
    const rawSegments = path.split("/").filter((segment) => segment !== "");
    if (prefix === "" && !REGISTRY_ROOTS.has(rawSegments[0] ?? "")) return false;
    try {
      if (options.authToken !== undefined && !isAuthorized(req, options.authToken)) {
        throw new RegistryError("UNAUTHORIZED", "Unauthorized");
      }
      let segments: string[];
      try {
        segments = rawSegments.map((segment) => decodeURIComponent(segment));
      } catch {
        throw new RegistryError("BAD_REQUEST", `Malformed path ${path}`);
      }
      // HEAD is answered as GET: Node leaves the body out of the answer to a HEAD.
      const method = req.method === "HEAD" ? "GET" : req.method;
      if (segments.length === 0) {
        if (method !== "GET") return refuseMethod(req, res, ["GET"]);
        sendJson(res, 200, {});
        return true;
      }
      const match = matchRoute(routesNow(), segments);
      if (!match) throw new RegistryError("NOT_FOUND", "HTTP 404 Not Found");
      const action = match.route.methods[method as Method];
      if (!action) return refuseMethod(req, res, Object.keys(match.route.methods));
      const call: Call = { params: match.params, query: url.searchParams, body: () => readJsonObject(req, maxBodyBytes, hostRead) };
      let reply: Reply;
      try {
        reply = await action(call);
      } catch (error) {
        if (method !== "GET" || !options.refresh || !(error instanceof RegistryError) || !MISSES.has(error.kind)) throw error;
        await options.refresh();
        reply = await matchRoute(routesNow(), segments)!.route.methods.GET!(call);
      }
      if ("raw" in reply) {
        res.writeHead(200, { "content-type": REGISTRY_CONTENT_TYPE, "content-length": Buffer.byteLength(reply.raw) });
        res.end(reply.raw);
      } else sendJson(res, 200, reply.json);
    } catch (error) {
      if (error === hostRefusal) throw error;
      sendError(res, error);
    }
    return true;
  };
}

/**
 * A path of the registry that does not take the request's method: OPTIONS is answered 204, any other
 * method 405, both with the methods it takes in Allow (HEAD wherever GET is; OPTIONS everywhere).
 */
function refuseMethod(req: IncomingMessage, res: ServerResponse, methods: readonly string[]): true {
  res.setHeader("allow", [...methods, ...(methods.includes("GET") ? ["HEAD"] : []), "OPTIONS"].sort().join(", "));
  if (req.method !== "OPTIONS") throw new RegistryError("METHOD_NOT_ALLOWED", "HTTP 405 Method Not Allowed");
  res.writeHead(204);
  res.end();
  return true;
}

function matchRoute(routes: readonly Route[], segments: readonly string[]): { route: Route; params: Record<string, string> } | undefined {
  for (const route of routes) {
    if (route.pattern.length !== segments.length) continue;
    const params: Record<string, string> = {};
    const matches = route.pattern.every((part, index) => {
      const segment = segments[index] as string;
      if (part.startsWith(":")) {
        params[part.slice(1)] = segment;
        return true;
      }
      return part === segment;
    });
    if (matches) return { route, params };
  }
  return undefined;
}

function flag(query: URLSearchParams, name: string): boolean {
  return query.get(name)?.toLowerCase() === "true";
}

function schemaId(text: string): number {
  const id = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(id)) throw new RegistryError("SCHEMA_NOT_FOUND", `Schema ${text} not found`);
  return id;
}

/** A subject version as Confluent returns it (schemaType is left out for Avro, as Confluent does). */
function versionBody(version: SubjectVersion): Record<string, unknown> {
  return { subject: version.subject, version: version.version, id: version.id, schema: version.schema };
}

function schemaRequest(body: Record<string, unknown>): SchemaRequest {
  return { schema: body.schema, schemaType: body.schemaType, references: body.references, id: body.id, version: body.version };
}

function registryRoutes(registry: LocalRegistry): Route[] {
  const json = (value: unknown): Reply => ({ json: value });
  const subjectParam = (call: Call): string => call.params.subject as string;
  const versionParam = (call: Call) => parseVersionSpec(call.params.version as string);
  return [
    {
      pattern: ["subjects"],
      methods: { GET: async (call) => json(await registry.subjects(flag(call.query, "deleted"), call.query.get("subjectPrefix") ?? "")) },
    },
    {
      pattern: ["subjects", ":subject"],
      methods: {
        POST: async (call) => json(versionBody(await registry.lookupSchema(subjectParam(call), schemaRequest(await call.body()), flag(call.query, "deleted")))),
        DELETE: async (call) => json(await registry.deleteSubject(subjectParam(call), flag(call.query, "permanent"))),
      },
    },
    {
      pattern: ["subjects", ":subject", "versions"],
      methods: {
        GET: async (call) => json(await registry.versionsOf(subjectParam(call), flag(call.query, "deleted"))),
        POST: async (call) => {
          const registered = await registry.registerSchema(subjectParam(call), schemaRequest(await call.body()));
          return json({ id: registered.id, version: registered.version, schema: registered.schema });
        },
      },
    },
    {
      pattern: ["subjects", ":subject", "versions", ":version"],
      methods: {
        GET: async (call) => json(versionBody(await registry.subjectVersion(subjectParam(call), versionParam(call), flag(call.query, "deleted")))),
        DELETE: async (call) => json(await registry.deleteVersion(subjectParam(call), versionParam(call), flag(call.query, "permanent"))),
      },
    },
    {
      pattern: ["subjects", ":subject", "versions", ":version", "schema"],
      methods: { GET: async (call) => ({ raw: (await registry.subjectVersion(subjectParam(call), versionParam(call), flag(call.query, "deleted"))).schema }) },
    },
    {
      // Schema references are not supported, so nothing refers to any version.
      pattern: ["subjects", ":subject", "versions", ":version", "referencedby"],
      methods: {
        GET: async (call) => {
          await registry.subjectVersion(subjectParam(call), versionParam(call), true);
          return json([]);
        },
      },
    },
    { pattern: ["schemas", "types"], methods: { GET: async () => json(["AVRO"]) } },
    {
      pattern: ["schemas", "ids", ":id"],
      methods: { GET: async (call) => json({ schema: await registry.schemaById(schemaId(call.params.id as string)) }) },
    },
    {
      pattern: ["schemas", "ids", ":id", "schema"],
      methods: { GET: async (call) => ({ raw: await registry.schemaById(schemaId(call.params.id as string)) }) },
    },
    {
      pattern: ["schemas", "ids", ":id", "subjects"],
      methods: {
        GET: async (call) => {
          const versions = await registry.versionsOfId(schemaId(call.params.id as string), flag(call.query, "deleted"));
          return json([...new Set(versions.map((record) => record.subject))]);
        },
      },
    },
    {
      pattern: ["schemas", "ids", ":id", "versions"],
      methods: {
        GET: async (call) => {
          const versions = await registry.versionsOfId(schemaId(call.params.id as string), flag(call.query, "deleted"));
          return json(versions.map((record) => ({ subject: record.subject, version: record.version })));
        },
      },
    },
    {
      pattern: ["compatibility", "subjects", ":subject", "versions"],
      methods: { POST: async (call) => compatibilityReply(registry, call, "all") },
    },
    {
      pattern: ["compatibility", "subjects", ":subject", "versions", ":version"],
      methods: { POST: async (call) => compatibilityReply(registry, call, versionParam(call)) },
    },
    ...configRoutes(registry, ["config"], () => null),
    ...configRoutes(registry, ["config", ":subject"], subjectParam),
    ...modeRoutes(registry, ["mode"], () => null),
    ...modeRoutes(registry, ["mode", ":subject"], subjectParam),
  ];
}

async function compatibilityReply(registry: LocalRegistry, call: Call, against: Parameters<LocalRegistry["testCompatibility"]>[1]): Promise<Reply> {
  const verbose = flag(call.query, "verbose");
  const report = await registry.testCompatibility(call.params.subject as string, against, schemaRequest(await call.body()), verbose);
  return { json: verbose ? { is_compatible: report.compatible, messages: report.messages } : { is_compatible: report.compatible } };
}

function configRoutes(registry: LocalRegistry, pattern: string[], subjectOf: (call: Call) => string | null): Route[] {
  return [
    {
      pattern,
      methods: {
        GET: async (call) => ({ json: { compatibilityLevel: await registry.getConfig(subjectOf(call), flag(call.query, "defaultToGlobal")) } }),
        PUT: async (call) => {
          const body = await call.body();
          return { json: { compatibility: await registry.setConfig(subjectOf(call), body.compatibility ?? body.compatibilityLevel) } };
        },
        DELETE: async (call) => ({ json: { compatibilityLevel: await registry.deleteConfig(subjectOf(call)) } }),
      },
    },
  ];
}

function modeRoutes(registry: LocalRegistry, pattern: string[], subjectOf: (call: Call) => string | null): Route[] {
  return [
    {
      pattern,
      methods: {
        GET: async (call) => ({ json: { mode: await registry.getMode(subjectOf(call), flag(call.query, "defaultToGlobal")) } }),
        PUT: async (call) => ({ json: { mode: await registry.setMode(subjectOf(call), (await call.body()).mode, flag(call.query, "force")) } }),
        DELETE: async (call) => ({ json: { mode: await registry.deleteMode(subjectOf(call)) } }),
      },
    },
  ];
}
