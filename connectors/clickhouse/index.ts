/** The ClickHouse sink: what the daemon wires (see clickhouse-sink.ts). */
export { ClickHouseSink, createClickHouseSink } from "./clickhouse-sink.ts";
export type { ClickHouseSinkConfig, ClickHouseSinkOptions } from "./config.ts";
