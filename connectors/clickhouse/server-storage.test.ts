import assert from "node:assert/strict";
import { test } from "node:test";
import { refusedPath, storageRefusal } from "./server-storage.ts";

// As ClickHouse 18.16 answered an INSERT on a full tmpfs (a probe of the running daemon).
const enospc =
  "Code: 75, e.displayText() = DB::ErrnoException: Cannot write to file /srv/ch/data/shop/t__v1/tmp_insert_all_6_6_0/primary.idx, errno: 28, strerror: No space left on device, e.what() = DB::ErrnoException";

test("a full, over-quota or read-only disk on the ClickHouse server is a storage refusal; other write errors and other codes are not", () => {
  assert.equal(storageRefusal(75, enospc), "its disk is full");
  assert.equal(storageRefusal(75, enospc.replace("errno: 28, strerror: No space left on device", "errno: 122, strerror: Disk quota exceeded")), "its disk quota is used up");
  assert.equal(storageRefusal(75, enospc.replace("errno: 28, strerror: No space left on device", "errno: 30, strerror: Read-only file system")), "its disk is read-only");
  assert.equal(storageRefusal(243, "Code: 243, e.displayText() = DB::Exception: Cannot reserve 1.00 MiB, not enough space"), "its disk is full");
  assert.equal(storageRefusal(1001, "Code: 1001, e.displayText() = std::exception. Code: 1001, type: std::filesystem::filesystem_error, e.what() = filesystem error: No space left on device"), "its disk is full");
  assert.equal(storageRefusal(75, enospc.replace("errno: 28, strerror: No space left on device", "errno: 5, strerror: Input/output error")), null, "an I/O error is not waited out");
  assert.equal(storageRefusal(27, "Code: 27, e.displayText() = DB::Exception: Cannot parse input"), null);
});

test("a data error quoting a row whose text reads like a storage refusal (a parse error showing the value) is not a storage refusal (the row is isolated as data, not retried for ever)", () => {
  const parseError = (value: string) =>
    `Code: 27, e.displayText() = DB::Exception: Cannot parse input: expected \\n before: x\\n: (at row 1)\n\nRow 1:\nColumn 0,   name: s, type: String, parsed text: "${value}"\nColumn 1,   name: a, type: UInt8,  ERROR: text "x<LINE FEED>" is not like UInt8\n, e.what() = DB::Exception`;
  assert.equal(storageRefusal(27, parseError("disk said No space left on device")), null);
  assert.equal(storageRefusal(27, parseError("errno: 30")), null);
  assert.equal(storageRefusal(53, "Code: 53, e.displayText() = DB::Exception: Type mismatch: Read-only file system"), null);
  assert.equal(storageRefusal(null, "write failed: errno: 28, strerror: No space left on device"), "its disk is full", "an error without a code is still read");
});

test("a full or read-only disk under codes other than the write's own (fsync, close, directory creation) is a storage refusal; a data code quoting the same words is not", () => {
  assert.equal(storageRefusal(95, "Code: 95, e.displayText() = DB::ErrnoException: Cannot fsync /srv/ch/data/shop/t__v1/tmp_insert_all_6_6_0/data.bin, errno: 28, strerror: No space left on device"), "its disk is full");
  assert.equal(storageRefusal(77, "Code: 77, e.displayText() = DB::ErrnoException: Cannot close file, errno: 30, strerror: Read-only file system"), "its disk is read-only");
  assert.equal(storageRefusal(1000, "Code: 1000, e.displayText() = Exception: Cannot create directory /srv/ch/data/shop/t__v1/tmp_insert_all_7_7_0/: No space left on device"), "its disk is full");
  assert.equal(storageRefusal(27, "Code: 27, e.displayText() = DB::Exception: Cannot parse input: parsed text: \"No space left on device\""), null);
});

test("the path the server could not write is read from its message", () => {
  assert.equal(refusedPath(enospc), "/srv/ch/data/shop/t__v1/tmp_insert_all_6_6_0/primary.idx");
  assert.equal(refusedPath("Code: 243, e.displayText() = DB::Exception: Cannot reserve 1.00 MiB, not enough space"), null);
});
