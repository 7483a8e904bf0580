/** The DuckDB sink: what the daemon wires (see duckdb-sink.ts). */
export { createDuckDbSink, DuckDbSink } from "./duckdb-sink.ts";
export type { DuckDbSinkConfig, DuckDbSinkOptions } from "./config.ts";
