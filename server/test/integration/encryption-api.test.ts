// Goal: client-supplied encryption works through the official SDK (unary, S2S sessions) and no
// plaintext of an encrypted stream reaches the cache or the bucket. Method: a server in
// local-directory mode; records carry a distinctive marker, and every file under the object root
// and the cache directory is scanned for it, with a plaintext stream as the positive control.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { AppendInput, AppendRecord, type S2 } from "@s2-dev/streamstore";
import { type ServerProcess, s2ClientFor, startServer } from "../support/server-process.js";

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name));
}

async function occurrences(dirs: readonly string[], marker: string): Promise<string[]> {
  const needle = Buffer.from(marker);
  const found: string[] = [];
  for (const dir of dirs) {
    for (const file of await filesUnder(dir)) {
      if ((await readFile(file)).includes(needle)) found.push(file);
    }
  }
  return found;
}

describe("encryption through the API", () => {
  let server: ServerProcess;
  let s2: S2;
  const key = randomBytes(32);
  // Random letters: LevelDB's snappy keeps them literal, so a plaintext copy would be found.
  const marker = `marker-${randomBytes(12).toString("hex")}`;
  const plainMarker = `plain-${randomBytes(12).toString("hex")}`;

  before(async () => {
    server = await startServer({ mode: "local", args: ["--flush-interval-ms", "2"] });
    s2 = s2ClientFor(server);
  });
  after(async () => {
    await server.cleanup();
  });

  for (const cipher of ["aegis-256", "aes-256-gcm"] as const) {
    it(`round-trips ${cipher} records and rejects a missing or wrong key`, async () => {
      const basinName = `enc-${cipher.replace(/[^a-z0-9]/g, "")}`.padEnd(8, "x");
      await s2.basins.create({ basin: basinName, config: { streamCipher: cipher } });
      const basin = s2.basin(basinName);
      await basin.streams.create({ stream: "secret" });
      const info = await basin.streams.list({ prefix: "secret" });
      assert.equal(info.streams[0]?.cipher, cipher);

      const stream = basin.stream("secret", { encryptionKey: key });
      await stream.append(
        AppendInput.create([
          AppendRecord.string({ body: `${marker}-unary`, headers: [["h", `${marker}-header`]] }),
        ]),
      );
      const session = await stream.appendSession();
      const ack = await (
        await session.submit(
          AppendInput.create([AppendRecord.string({ body: `${marker}-session` })]),
        )
      ).ack();
      assert.equal(ack.start.seqNum, 1);
      await session.close();

      const batch = await stream.read({
        start: { from: { seqNum: 0 } },
        stop: { limits: { count: 10 } },
      });
      assert.deepEqual(
        batch.records.map((record) => record.body),
        [`${marker}-unary`, `${marker}-session`],
      );
      assert.deepEqual(batch.records[0]?.headers, [["h", `${marker}-header`]]);

      await assert.rejects(
        basin
          .stream("secret")
          .read({ start: { from: { seqNum: 0 } }, stop: { limits: { count: 1 } } }),
        (error: unknown) => {
          assert.equal((error as { status?: number }).status, 400);
          assert.equal((error as { code?: string }).code, "bad_header");
          return true;
        },
      );
      await assert.rejects(
        basin
          .stream("secret", { encryptionKey: randomBytes(32) })
          .read({ start: { from: { seqNum: 0 } }, stop: { limits: { count: 1 } } }),
        (error: unknown) => {
          assert.equal((error as { status?: number }).status, 400);
          assert.equal((error as { code?: string }).code, "decryption_failed");
          return true;
        },
      );
      await stream.close();
    });
  }

  it("leaves no plaintext of encrypted streams in the bucket or the cache", async () => {
    await s2.basins.create({ basin: "plain-basin" });
    const plain = s2.basin("plain-basin").stream("open");
    await s2.basin("plain-basin").streams.create({ stream: "open" });
    await plain.append(AppendInput.create([AppendRecord.string({ body: plainMarker })]));
    const dirs = [server.localRoot!, server.cacheDir];
    assert.ok(
      (await occurrences(dirs, plainMarker)).length > 0,
      "positive control: plaintext streams are found",
    );
    assert.deepEqual(
      await occurrences(dirs, marker),
      [],
      "no plaintext of encrypted records anywhere",
    );
    await plain.close();
  });
});
