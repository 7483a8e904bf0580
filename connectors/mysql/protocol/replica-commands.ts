/** The replication commands a replica sends: COM_REGISTER_SLAVE, COM_BINLOG_DUMP and COM_BINLOG_DUMP_GTID (payloads, without the packet header). */

const COM_REGISTER_SLAVE = 0x15;
const COM_BINLOG_DUMP = 0x12;
const COM_BINLOG_DUMP_GTID = 0x1e;
/** BINLOG_THROUGH_GTID: start after the transactions of the GTID set. */
const BINLOG_THROUGH_GTID = 0x04;

export function registerReplica(serverId: number, hostname: string): Buffer {
  const host = Buffer.from(hostname, "utf8").subarray(0, 255);
  const out = Buffer.alloc(1 + 4 + 1 + host.length + 1 + 1 + 2 + 4 + 4);
  let offset = out.writeUInt8(COM_REGISTER_SLAVE, 0);
  offset = out.writeUInt32LE(serverId, offset);
  offset = out.writeUInt8(host.length, offset);
  offset += host.copy(out, offset);
  offset = out.writeUInt8(0, offset); // user
  offset = out.writeUInt8(0, offset); // password
  offset = out.writeUInt16LE(0, offset); // port
  offset = out.writeUInt32LE(0, offset); // replication rank
  out.writeUInt32LE(0, offset); // source id
  return out;
}

export function binlogDump(serverId: number, file: string, offset: number): Buffer {
  const name = Buffer.from(file, "utf8");
  const out = Buffer.alloc(1 + 4 + 2 + 4 + name.length);
  let at = out.writeUInt8(COM_BINLOG_DUMP, 0);
  at = out.writeUInt32LE(offset, at);
  at = out.writeUInt16LE(0, at);
  at = out.writeUInt32LE(serverId, at);
  name.copy(out, at);
  return out;
}

export function binlogDumpGtid(serverId: number, gtidSet: Buffer): Buffer {
  const out = Buffer.alloc(1 + 2 + 4 + 4 + 8 + 4 + gtidSet.length);
  let at = out.writeUInt8(COM_BINLOG_DUMP_GTID, 0);
  at = out.writeUInt16LE(BINLOG_THROUGH_GTID, at);
  at = out.writeUInt32LE(serverId, at);
  at = out.writeUInt32LE(0, at); // no file name
  at = out.writeBigUInt64LE(4n, at);
  at = out.writeUInt32LE(gtidSet.length, at);
  gtidSet.copy(out, at);
  return out;
}
