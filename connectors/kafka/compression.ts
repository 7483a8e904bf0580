/**
 * Record batch compression codecs for kafkajs, which ships only gzip: zstd from Node's built-in
 * zlib (Node >= 22.15), LZ4 frames from lz4-napi (Kafka's LZ4 codec is the LZ4 frame format), and
 * Snappy for reading only (snappy.ts: batches a broker stores with compression.type=snappy).
 */
import { zstdCompress, zstdDecompress } from "node:zlib";
import { promisify } from "node:util";
import kafkajs, { CompressionTypes } from "kafkajs";
import { compressFrame, decompressFrame } from "lz4-napi";
import { SluiceError } from "../errors.ts";
import { snappyDecompress } from "./snappy.ts";

const zstdCompressAsync = promisify(zstdCompress);
const zstdDecompressAsync = promisify(zstdDecompress);

let registered = false;

/** Registers the zstd, LZ4 and Snappy codecs with kafkajs once per process (its codec table is global). */
export function registerCompressionCodecs(): void {
  if (registered) return;
  registered = true;
  // Not a named export of the CommonJS module.
  const { CompressionCodecs } = kafkajs;
  CompressionCodecs[CompressionTypes.ZSTD] = () => ({
    compress: async (encoder: { buffer: Buffer }) => zstdCompressAsync(encoder.buffer),
    decompress: async (buffer: Buffer) => zstdDecompressAsync(buffer),
  });
  CompressionCodecs[CompressionTypes.LZ4] = () => ({
    compress: async (encoder: { buffer: Buffer }) => compressFrame(encoder.buffer),
    decompress: async (buffer: Buffer) => decompressFrame(buffer),
  });
  // Read only: an operator's compression.type=snappy on a topic or broker makes the broker store batches so.
  CompressionCodecs[CompressionTypes.Snappy] = () => ({
    compress: () => {
      throw new SluiceError("Sluice does not write Snappy (topics.compression: gzip, lz4 or zstd)", { code: "CONFIG_INVALID", context: { component: "kafka" } });
    },
    decompress: async (buffer: Buffer) => snappyDecompress(buffer),
  });
}

export function compressionType(name: "none" | "gzip" | "lz4" | "zstd"): CompressionTypes {
  switch (name) {
    case "none":
      return CompressionTypes.None;
    case "gzip":
      return CompressionTypes.GZIP;
    case "lz4":
      return CompressionTypes.LZ4;
    case "zstd":
      return CompressionTypes.ZSTD;
  }
}
