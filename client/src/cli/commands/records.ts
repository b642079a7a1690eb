/**
 * Record commands (`tributary.v1.StreamService`): append (stdin through a pipelined append
 * session), read (to the tail, or `--follow` the live tail), check-tail, and the command records
 * fence and trim (S2-API.md §5.2), appended like any record.
 */
import { once } from "node:events";
import {
  connectErrorMetadata,
  encryptionKeyBytes,
  fencingTokenBytesMax,
} from "@tributary/protocol";
import type { SequencedRecord } from "@tributary/protocol/gen/s2/v1/s2_pb.js";
import type { ReadSessionRequest } from "@tributary/protocol/gen/tributary/v1/stream_pb.js";
import type { SubmitAck } from "../../append-session.js";
import { type RecordInput, toAppendRecord } from "../../records.js";
import {
  booleanFlag,
  type ParsedArgs,
  parseChoice,
  parseDurationSecs,
  parseU64,
  positionalsOf,
  stringFlag,
  u64Flag,
  UsageError,
} from "../args.js";
import type { Command, CommandContext } from "../command.js";
import type { CliIo } from "../io.js";
import { writeJson, writeLine, writeNote } from "../output.js";
import { createProgress, noProgress, type Progress } from "../progress.js";
import {
  commandOf,
  describeCommand,
  formatJsonRecord,
  type InputRecord,
  RecordInputError,
  type RecordFormat,
  readInputRecords,
  readRawRecord,
  recordFormats,
  sequencedRecordBytes,
} from "../record-format.js";
import { s2CodeOf } from "../report-error.js";
import { parseStreamUri, streamUri } from "../uri.js";

const newline = Buffer.from("\n");

/** Writes `chunk` to stdout, waiting for it to drain when its buffer is full. */
async function writeOut(io: CliIo, chunk: string | Uint8Array): Promise<void> {
  if (!io.stdout.write(chunk)) await once(io.stdout, "drain");
}

function formatFlag(args: ParsedArgs): RecordFormat {
  return parseChoice(stringFlag(args, "format") ?? "text", recordFormats, "--format");
}

/** The fencing token a flag gives, checked for length before anything is sent. */
function fencingTokenFlag(args: ParsedArgs): string | undefined {
  const token = stringFlag(args, "fencing-token");
  if (token !== undefined) checkFencingToken(token, "--fencing-token");
  return token;
}

function checkFencingToken(token: string, what: string): void {
  if (Buffer.byteLength(token) > fencingTokenBytesMax) {
    throw new UsageError(`${what} must be at most ${fencingTokenBytesMax} bytes`);
  }
}

/**
 * The key of an encrypted stream: `--encryption-key`, else S2_ENCRYPTION_KEY (as the S2 CLI
 * reads it), standard base64 of 32 bytes; `undefined` for none.
 */
function encryptionKeyOf(args: ParsedArgs, env: CliIo["env"]): Uint8Array | undefined {
  const text = (stringFlag(args, "encryption-key") ?? env["S2_ENCRYPTION_KEY"])?.trim();
  if (text === undefined || text === "") return undefined;
  const key = Buffer.from(text, "base64");
  if (key.toString("base64") !== text || key.length !== encryptionKeyBytes) {
    // The message never repeats the key.
    throw new UsageError(
      `the encryption key must be base64 of ${encryptionKeyBytes} bytes (--encryption-key or S2_ENCRYPTION_KEY)`,
    );
  }
  return key;
}

const encryptionKeyHelp =
  "  --encryption-key B64   the key of an encrypted stream (default: S2_ENCRYPTION_KEY)";

function positionJson(position: { seqNum: bigint; timestamp: bigint } | undefined): unknown {
  return position === undefined
    ? null
    : { seq_num: position.seqNum, timestamp: position.timestamp };
}

const append: Command = {
  name: "append",
  summary: "Append records from stdin",
  usage: "append s2://basin/stream [--format text|json|json-base64|raw] [flags] < input",
  flags: {
    format: { type: "string" },
    "fencing-token": { type: "string", short: "f" },
    "match-seq-num": { type: "string", short: "m" },
    "linger-ms": { type: "string" },
    "encryption-key": { type: "string" },
  },
  help: [
    "  --format text         one record per line, the line is the body (default)",
    '  --format json         one JSON object per line: {"headers":[["n","v"]],"body":"..."}',
    "  --format json-base64  the same with base64 header names, values and bodies",
    "  --format raw          all of stdin is one record",
    "  -f, --fencing-token T append only while the stream's fencing token is T",
    "  -m, --match-seq-num N append only if the first record gets seq num N",
    "  --linger-ms N         wait this long for more records before sending a batch (default 5)",
    encryptionKeyHelp,
  ],
  async run(args, context) {
    const [uri] = positionalsOf(args, ["stream"]);
    const { basin, stream } = parseStreamUri(uri!);
    const format = formatFlag(args);
    const fencingToken = fencingTokenFlag(args);
    let matchSeqNum = u64Flag(args, "match-seq-num");
    const lingerMs = u64Flag(args, "linger-ms");
    const { io } = context;
    const encryptionKey = encryptionKeyOf(args, io.env);
    const records: AsyncIterable<InputRecord> | InputRecord[] =
      format === "raw" ? await readRawRecord(io.stdin) : readInputRecords(io.stdin, format);
    const session = context
      .client()
      .basin(basin)
      .stream(stream)
      .appendSession({
        signal: context.signal,
        ...(lingerMs !== undefined && { lingerMs: Number(lingerMs) }),
        ...(encryptionKey !== undefined && { encryptionKey }),
      });
    const progress = createProgress(io, "appended");
    let count = 0;
    let acked = 0;
    let first: SubmitAck | undefined;
    let last: SubmitAck | undefined;
    try {
      for await (const input of records) {
        const ticket = await session.submit([input.record], {
          ...(matchSeqNum !== undefined && { matchSeqNum }),
          ...(fencingToken !== undefined && { fencingToken }),
        });
        // Only the first record must land at --match-seq-num; later ones follow it.
        matchSeqNum = undefined;
        count += 1;
        // Acks arrive in submit order, so the last one seen is the latest; a failure also fails
        // `close()` below, which reports it.
        ticket
          .ack()
          .then((ack) => {
            first ??= ack;
            last = ack;
            acked += 1;
            progress.add(1, ticket.bytes);
          })
          .catch(() => {});
      }
      await session.close();
    } catch (error) {
      if (!(error instanceof RecordInputError)) throw error;
      // The records before the bad line were submitted: let them land (or report why they did
      // not) and say how many did.
      await session.close();
      throw new RecordInputError(`${error.message} (${acked} appended before it)`);
    } finally {
      progress.done();
    }
    if (count === 0 || first === undefined || last === undefined) {
      if (context.json) writeJson(io, { records: 0 });
      else writeNote(io, "nothing to append: the input had no records");
      return 0;
    }
    const { batchAck } = last;
    if (context.json) {
      writeJson(io, {
        records: count,
        start: positionJson(first.batchAck.start),
        end: positionJson(batchAck.end),
        tail: positionJson(batchAck.tail),
      });
    } else {
      writeLine(
        io,
        `appended ${count} ${count === 1 ? "record" : "records"} in ` +
          `${first.startSeqNum}..=${last.endSeqNum - 1n}, ` +
          `tail ${batchAck.tail?.seqNum ?? last.endSeqNum} @ ${batchAck.tail?.timestamp ?? 0n}`,
      );
    }
    return 0;
  },
};

type ReadStart = ReadSessionRequest["start"];

function readStartOf(args: ParsedArgs): ReadStart {
  const seqNum = u64Flag(args, "seq-num");
  const timestamp = u64Flag(args, "timestamp");
  const ago = stringFlag(args, "ago");
  const tailOffset = u64Flag(args, "tail-offset");
  const given = [seqNum, timestamp, ago, tailOffset].filter((value) => value !== undefined);
  if (given.length > 1) {
    throw new UsageError("give one of --seq-num, --timestamp, --ago, --tail-offset");
  }
  if (timestamp !== undefined) return { case: "timestamp", value: timestamp };
  if (ago !== undefined) {
    const agoMs = BigInt(parseDurationSecs(ago, "--ago")) * 1000n;
    const nowMs = BigInt(Date.now());
    return { case: "timestamp", value: nowMs > agoMs ? nowMs - agoMs : 0n };
  }
  if (tailOffset !== undefined) return { case: "tailOffset", value: tailOffset };
  return { case: "seqNum", value: seqNum ?? 0n };
}

/** Prints records in one format, counting them against `--count` and `--bytes`. */
class RecordPrinter {
  records = 0n;
  bytes = 0n;
  private readonly progress: Progress;

  constructor(
    private readonly io: CliIo,
    private readonly format: RecordFormat,
    private readonly limits: { count?: bigint; bytes?: bigint; until?: bigint },
  ) {
    // Progress goes to stderr; it would garble records shown on the same terminal.
    this.progress = io.stdout.isTTY === true ? noProgress : createProgress(io, "read");
  }

  /** Whether a limit says to stop before `record`. */
  isDoneBefore(record: SequencedRecord): boolean {
    const { count, bytes, until } = this.limits;
    if (count !== undefined && this.records >= count) return true;
    if (until !== undefined && record.timestamp >= until) return true;
    const size = BigInt(sequencedRecordBytes(record));
    return bytes !== undefined && this.records > 0n && this.bytes + size > bytes;
  }

  /** Whether the limits are met (nothing more to read). */
  get isDone(): boolean {
    return this.limits.count !== undefined && this.records >= this.limits.count;
  }

  async print(record: SequencedRecord): Promise<void> {
    const size = sequencedRecordBytes(record);
    this.records += 1n;
    this.bytes += BigInt(size);
    this.progress.add(1, size);
    switch (this.format) {
      case "text": {
        const command = commandOf(record);
        if (command !== undefined) {
          this.progress.done(); // the note gets a line of its own; progress redraws below it
          writeNote(this.io, describeCommand(command, record));
        } else await writeOut(this.io, Buffer.concat([record.body, newline]));
        return;
      }
      case "raw":
        await writeOut(this.io, record.body);
        return;
      case "json":
      case "json-base64":
        await writeOut(this.io, `${formatJsonRecord(record, this.format === "json-base64")}\n`);
        return;
    }
  }

  done(): void {
    this.progress.done();
  }
}

/** The seq num a followed read starts at, resolved once from the start flags. */
async function followStartSeqNum(
  context: CommandContext,
  target: { basin: string; stream: string; encryptionKey?: Uint8Array },
  start: ReadStart,
  clamp: boolean,
): Promise<bigint> {
  // Checking the tail first also fails fast on a missing stream or an unreachable server, which
  // the read session would retry.
  const tail = await context.client().basin(target.basin).stream(target.stream).checkTail();
  switch (start.case) {
    case "seqNum":
      return clamp && start.value > tail.seqNum ? tail.seqNum : start.value;
    case "tailOffset":
      return tail.seqNum > start.value ? tail.seqNum - start.value : 0n;
    case "timestamp": {
      const { batch } = await context.client().streams.read({
        ...target,
        start,
        count: 1n,
        clamp: true,
      });
      return batch?.records[0]?.seqNum ?? batch?.tail?.seqNum ?? tail.seqNum;
    }
    case undefined:
      return tail.seqNum;
  }
}

/**
 * Whether a 416 from a read that does not follow means "nothing to read": the start is exactly
 * the tail. A start beyond the tail stays an error, as in S2.
 */
function isEmptyAtTail(error: unknown, start: ReadStart): boolean {
  if (s2CodeOf(error) === undefined) return false;
  const metadata = (error as { metadata: Headers }).metadata;
  const tailSeqNum = metadata.get(connectErrorMetadata.tailSeqNum);
  const tailTimestamp = metadata.get(connectErrorMetadata.tailTimestamp);
  if (tailSeqNum === null) return false;
  switch (start.case) {
    case "seqNum":
      return start.value === BigInt(tailSeqNum);
    case "timestamp":
      return tailTimestamp !== null && start.value <= BigInt(tailTimestamp);
    default:
      return true;
  }
}

const read: Command = {
  name: "read",
  summary: "Read records to stdout",
  usage: "read s2://basin/stream [start] [limits] [--follow] [--format text|json|json-base64|raw]",
  flags: {
    "seq-num": { type: "string", short: "s" },
    timestamp: { type: "string" },
    ago: { type: "string" },
    "tail-offset": { type: "string" },
    count: { type: "string", short: "n" },
    bytes: { type: "string", short: "b" },
    until: { type: "string" },
    clamp: { type: "boolean" },
    follow: { type: "boolean", short: "F" },
    format: { type: "string" },
    "encryption-key": { type: "string" },
  },
  help: [
    "  start (one of; default --seq-num 0):",
    "    -s, --seq-num N      the first seq num",
    "    --timestamp MS       the first record at or after this timestamp (ms since the epoch)",
    "    --ago 1h             the first record at or after this long ago",
    "    --tail-offset N      N records before the tail",
    "  -n, --count N          at most N records",
    "  -b, --bytes N          at most N metered bytes",
    "  --until MS             stop before the first record at or after this timestamp",
    "  --clamp                start at the tail if the start is beyond it",
    "  -F, --follow           keep reading new records until interrupted or --count is reached",
    "                         (without it, read stops at the tail)",
    "  --format text          bodies, one per line; fence/trim records as notes on stderr",
    "  --format json          one object per line: seq_num, timestamp, headers, body (UTF-8)",
    "  --format json-base64   the same with base64 header names, values and bodies",
    "  --format raw           bodies back to back, nothing added",
    encryptionKeyHelp,
  ],
  async run(args, context) {
    const [uri] = positionalsOf(args, ["stream"]);
    const target = parseStreamUri(uri!);
    const format = context.json ? "json" : formatFlag(args);
    const start = readStartOf(args);
    const count = u64Flag(args, "count");
    const bytes = u64Flag(args, "bytes");
    const until = u64Flag(args, "until");
    const clamp = booleanFlag(args, "clamp") ?? false;
    const encryptionKey = encryptionKeyOf(args, context.io.env);
    const keyField = encryptionKey === undefined ? {} : { encryptionKey };
    const limits = {
      ...(count !== undefined && { count }),
      ...(bytes !== undefined && { bytes }),
      ...(until !== undefined && { until }),
    };
    const printer = new RecordPrinter(context.io, format, limits);
    try {
      if (booleanFlag(args, "follow") === true) {
        if (printer.isDone) return 0;
        const startSeqNum = await followStartSeqNum(
          context,
          { ...target, ...keyField },
          start,
          clamp,
        );
        // Limits are applied here: the server ends a limited session at the tail instead of
        // waiting (S2 semantics), and a followed read must wait.
        for await (const record of context.client().readSession({
          ...target,
          startSeqNum,
          signal: context.signal,
          ...keyField,
        })) {
          if (printer.isDoneBefore(record)) break;
          await printer.print(record);
          if (printer.isDone) break;
        }
        return 0;
      }
      const responses = context.client().streams.readSession(
        {
          ...target,
          start,
          clamp,
          // End at the tail rather than wait for records (a session without limits follows).
          waitSecs: 0,
          ...limits,
          ...keyField,
        },
        { signal: context.signal },
      );
      for await (const response of responses) {
        for (const record of response.batch?.records ?? []) await printer.print(record);
      }
      return 0;
    } catch (error) {
      const isFollowing = booleanFlag(args, "follow") === true;
      // Ctrl-C is how a followed read ends; other commands report the interruption.
      if (isFollowing && context.signal.aborted) return 0;
      if (!isFollowing && isEmptyAtTail(error, start)) return 0;
      throw error;
    } finally {
      printer.done();
    }
  },
};

const checkTail: Command = {
  name: "check-tail",
  summary: "Print the tail: the next seq num @ the last timestamp",
  usage: "check-tail s2://basin/stream [--json]",
  flags: {},
  help: [],
  async run(args, context) {
    const [uri] = positionalsOf(args, ["stream"]);
    const { basin, stream } = parseStreamUri(uri!);
    const tail = await context.client().basin(basin).stream(stream).checkTail();
    if (context.json) writeJson(context.io, positionJson(tail));
    else writeLine(context.io, `${tail.seqNum} @ ${tail.timestamp}`);
    return 0;
  },
};

/** Appends one command record with the conditions the flags give; returns its seq num. */
async function appendCommand(
  context: CommandContext,
  target: { basin: string; stream: string },
  record: RecordInput,
  args: ParsedArgs,
): Promise<bigint> {
  const fencingToken = fencingTokenFlag(args);
  const matchSeqNum = u64Flag(args, "match-seq-num");
  const { ack } = await context.client().streams.append({
    ...target,
    input: {
      records: [toAppendRecord(record)],
      ...(fencingToken !== undefined && { fencingToken }),
      ...(matchSeqNum !== undefined && { matchSeqNum }),
    },
  });
  return ack?.start?.seqNum ?? 0n;
}

const commandFlags = {
  "fencing-token": { type: "string", short: "f" },
  "match-seq-num": { type: "string", short: "m" },
} as const;
const commandFlagsHelp = [
  "  -f, --fencing-token T  only if the stream's current fencing token is T",
  "  -m, --match-seq-num N  only if the command record gets seq num N",
];

const fence: Command = {
  name: "fence",
  summary: "Set a stream's fencing token (an empty token resets it)",
  usage: "fence s2://basin/stream <new-token> [--fencing-token CURRENT] [--json]",
  flags: commandFlags,
  help: [`  <new-token>            at most ${fencingTokenBytesMax} bytes`, ...commandFlagsHelp],
  async run(args, context) {
    const [uri, token] = positionalsOf(args, ["stream", "new-token"]);
    const target = parseStreamUri(uri!);
    checkFencingToken(token!, "the new token");
    const seqNum = await appendCommand(
      context,
      target,
      { headers: [["", "fence"]], body: token! },
      args,
    );
    if (context.json) writeJson(context.io, { seq_num: seqNum, fencing_token: token });
    else {
      writeLine(
        context.io,
        `fenced ${streamUri(target.basin, target.stream)} with token ${JSON.stringify(token)} ` +
          `at seq num ${seqNum}`,
      );
    }
    return 0;
  },
};

const trim: Command = {
  name: "trim",
  summary: "Request deletion of the records before a seq num",
  usage: "trim s2://basin/stream <trim-point> [--fencing-token T] [--json]",
  flags: commandFlags,
  help: [
    "  <trim-point>           records with a smaller seq num are deleted",
    ...commandFlagsHelp,
  ],
  async run(args, context) {
    const [uri, pointText] = positionalsOf(args, ["stream", "trim-point"]);
    const target = parseStreamUri(uri!);
    const point = parseU64(pointText!, "the trim point");
    const body = Buffer.alloc(8);
    body.writeBigUInt64BE(point);
    const seqNum = await appendCommand(context, target, { headers: [["", "trim"]], body }, args);
    if (context.json) writeJson(context.io, { seq_num: seqNum, trim_point: point });
    else {
      writeLine(
        context.io,
        `trim of ${streamUri(target.basin, target.stream)} to ${point} recorded at seq num ${seqNum}`,
      );
    }
    return 0;
  },
};

/** The record commands. */
export const recordCommands: readonly Command[] = [append, read, checkTail, fence, trim];
