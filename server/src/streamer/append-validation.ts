/**
 * Semantic validation of an append batch (S2-API.md §5.1, §5.2, §5.3 step 1): everything that
 * depends only on the batch and the stream's config, checked before the batch waits for admission
 * or touches the stream's state. Failures are 422 `invalid`.
 */
import type { StreamConfig } from "../core/config.js";
import { invalid } from "../core/errors.js";
import { fencingTokenBytesMax, recordBatchBytesMax, recordBatchCountMax } from "../core/limits.js";
import { validateFencingToken } from "../core/names.js";
import { type AppendInput, commandValueOf, meteredBytesOfBatch } from "../core/records.js";

const utf8 = new TextDecoder("utf-8", { fatal: true });
const trimBodyBytes = 8;

/** Throws `S2Error("invalid")` for a batch the stream must not accept; returns its metered size. */
export function validateAppendInput(input: AppendInput, config: StreamConfig): number {
  const bytes = validateAppendBatch(input);
  if (config.timestamping.mode === "client-require") {
    for (const record of input.records) {
      if (record.timestamp === undefined) {
        throw invalid("record timestamp was required but was missing");
      }
    }
  }
  return bytes;
}

/**
 * Batches that passed `validateAppendBatch`, with their metered size. A batch is judged and metered
 * once on its way down (the append session, the record service and the streamer all ask):
 * `AppendInput` is immutable once decoded, so the answer cannot change.
 */
const validatedBytes = new WeakMap<AppendInput, number>();

/**
 * The checks that need no stream (everything but the timestamping mode's): the record service runs
 * them before it resolves, and maybe auto-creates, the stream (S2-API.md §5.3 steps 1–2), so that
 * an invalid batch creates nothing. Returns the batch's metered size; the checks run once per
 * batch (`validatedBytes`).
 */
export function validateAppendBatch(input: AppendInput): number {
  const known = validatedBytes.get(input);
  if (known !== undefined) return known;
  const bytes = checkAppendBatch(input);
  validatedBytes.set(input, bytes);
  return bytes;
}

function checkAppendBatch(input: AppendInput): number {
  const count = input.records.length;
  if (count === 0) throw invalid("append batch must contain at least one record");
  if (count > recordBatchCountMax) {
    throw invalid(
      `append batch has too many records. count=\`${count}\` max=\`${recordBatchCountMax}\``,
    );
  }
  const bytes = meteredBytesOfBatch(input.records);
  if (bytes > recordBatchBytesMax) {
    throw invalid(
      `append batch is too large. metered_bytes=\`${bytes}\` max=\`${recordBatchBytesMax}\``,
    );
  }
  if (input.fencingToken !== undefined) {
    const reason = validateFencingToken(input.fencingToken);
    if (reason !== undefined) throw invalid(reason);
  }
  if (
    input.matchSeqNum !== undefined &&
    !(Number.isSafeInteger(input.matchSeqNum) && input.matchSeqNum >= 0)
  ) {
    throw invalid(`match_seq_num out of range. match_seq_num=\`${input.matchSeqNum}\``);
  }
  for (const record of input.records) {
    if (
      record.timestamp !== undefined &&
      !(Number.isSafeInteger(record.timestamp) && record.timestamp >= 0)
    ) {
      throw invalid(`record timestamp out of range. timestamp=\`${record.timestamp}\``);
    }
    const command = commandValueOf(record);
    if (command !== undefined) {
      validateCommand(command, record.body);
      continue;
    }
    for (const header of record.headers) {
      if (header.name.length === 0) throw invalid("invalid header: empty name");
    }
  }
  return bytes;
}

function validateCommand(name: Uint8Array, body: Uint8Array): void {
  let command: string;
  try {
    command = utf8.decode(name);
  } catch {
    throw invalid("unknown command");
  }
  if (command === "fence") {
    try {
      utf8.decode(body);
    } catch {
      throw invalid("fencing token must be valid UTF-8");
    }
    if (body.length > fencingTokenBytesMax) {
      throw invalid(
        `fencing token is too long. bytes=\`${body.length}\` max=\`${fencingTokenBytesMax}\``,
      );
    }
    return;
  }
  if (command === "trim") {
    if (body.length !== trimBodyBytes) {
      throw invalid(`trim body must be exactly 8 bytes. bytes=\`${body.length}\``);
    }
    return;
  }
  throw invalid(`unknown command. command=\`${command}\``);
}
