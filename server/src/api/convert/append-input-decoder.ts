/**
 * `appendInputFromProto(decodeAppendInputProto(bytes))`, decoded by hand: the append path's
 * decoder (S2S append frames, REST protobuf appends). protobuf-es decodes by reflection, one
 * message object per record and header: at 512 B records that was ~9% of the server's main thread
 * (issue 12). It reads one buffer: an S2S frame's payload joined into one exact-size copy, as
 * before. (Reading the frame's pieces in place was tried and dropped: a record left a view of a
 * piece keeps the whole socket read behind it alive until the record is encoded into its batch,
 * up to 16 times the payload, 6.2 times measured with 3,000 B records, which no budget counts;
 * and it saved nothing measurable.)
 *
 * Wire form (s2.v1): AppendInput { records = 1 (AppendRecord, repeated); match_seq_num = 2
 * (optional uint64); fencing_token = 3 (optional string) }; AppendRecord { timestamp = 1 (optional
 * uint64); headers = 2 (Header, repeated); body = 3 (bytes) }; Header { name = 1; value = 2 }.
 *
 * What it gives, for every input protobuf-es accepts as a valid encoding, is what the protobuf-es
 * route gives (the differential test in `append-input-decoder.test.ts`):
 * - a repeated field's occurrences append, a scalar's last occurrence wins (so two encodings
 *   concatenated decode as their merge); unknown fields of every wire type, groups included, are
 *   skipped;
 * - an optional field present with its default (0, "") is present;
 * - a u64 above `Number.MAX_SAFE_INTEGER` is 422 `invalid`, reported only once the whole message
 *   has decoded (a malformed message is 400 first), a record's before `match_seq_num`, the first
 *   record's first; varints longer than 10 bytes are malformed, bits past 64 dropped;
 * - a fencing token that is not valid UTF-8 is malformed (proto3 strings are validated).
 * It is stricter on some malformed input, which it refuses where protobuf-es reads on: a known
 * field sent with another wire type (protobuf-es reads it as its declared type), a field that
 * crosses the end of the message it is in, a varint longer than 10 bytes in an unknown field, and
 * groups nested deeper than `groupDepthMax`.
 *
 * Bytes fields (bodies, header names and values) are views of the input: a record keeps its
 * input alive until it is encoded into its batch (`encodeRecordBatch` copies it).
 */
import { S2Error } from "../../core/errors.js";
import type { AppendInput, AppendRecord, Header } from "../../core/records.js";
import { u64ToNumber } from "./records-proto.js";

const wireVarint = 0;
const wireFixed64 = 1;
const wireLengthDelimited = 2;
const wireStartGroup = 3;
const wireEndGroup = 4;
const wireFixed32 = 5;

/** proto3 strings are validated UTF-8 (protobuf-es: `utf8Validation`): invalid is malformed. */
const utf8 = new TextDecoder("utf-8", { fatal: true });
/**
 * Groups nested in an unknown field, at most (protobuf-es stops at its recursion limit, 100): a
 * payload of start-group tags would otherwise recurse once per byte pair.
 */
const groupDepthMax = 64;

/** A malformed encoding; the decoder turns it into the caller's 400. */
class MalformedError extends Error {}

/**
 * Decodes an `AppendInput` from `bytes`; malformed bytes are 400 with `errorCode` (`bad_proto`
 * for a REST body, `bad_frame` for an S2S frame), u64 values past `Number.MAX_SAFE_INTEGER` 422
 * `invalid`.
 */
export function decodeAppendInput(
  bytes: Uint8Array,
  errorCode: "bad_proto" | "bad_frame",
): AppendInput {
  const reader = new WireReader(bytes);
  let decoded: DecodedInput;
  try {
    decoded = readAppendInput(reader);
  } catch (error) {
    if (!(error instanceof MalformedError)) throw error;
    throw new S2Error(errorCode, `invalid protobuf body: ${error.message}`, { cause: error });
  }
  const { records, timestamps, matchSeqNum, fencingToken } = decoded;
  for (let i = 0; i < records.length; i++) {
    const timestamp = timestamps[i];
    if (timestamp === undefined) continue;
    (records[i] as { timestamp?: number }).timestamp = u64(timestamp, `records[${i}].timestamp`);
  }
  return {
    records,
    ...(matchSeqNum !== undefined && { matchSeqNum: u64(matchSeqNum, "match_seq_num") }),
    ...(fencingToken !== undefined && { fencingToken }),
  };
}

interface DecodedInput {
  readonly records: AppendRecord[];
  /** Each record's timestamp as read (range-checked after the whole message decoded). */
  readonly timestamps: (number | bigint | undefined)[];
  readonly matchSeqNum: number | bigint | undefined;
  readonly fencingToken: string | undefined;
}

/** A u64 varint's value as a number: 422 `invalid` past `Number.MAX_SAFE_INTEGER`. */
function u64(value: number | bigint, field: string): number {
  return typeof value === "number" ? value : u64ToNumber(value, field);
}

function readAppendInput(reader: WireReader): DecodedInput {
  const records: AppendRecord[] = [];
  const timestamps: (number | bigint | undefined)[] = [];
  let matchSeqNum: number | bigint | undefined;
  let fencingToken: string | undefined;
  const end = reader.length;
  while (reader.position < end) {
    const [field, wire] = reader.tag();
    if (field === 1) {
      expectWire(field, wire, wireLengthDelimited);
      const recordEnd = reader.messageEnd(end);
      const { record, timestamp } = readAppendRecord(reader, recordEnd);
      records.push(record);
      timestamps.push(timestamp);
    } else if (field === 2) {
      expectWire(field, wire, wireVarint);
      matchSeqNum = reader.varint64();
    } else if (field === 3) {
      expectWire(field, wire, wireLengthDelimited);
      fencingToken = decodeUtf8(reader.bytes(reader.lengthWithin(end)));
    } else {
      reader.skip(field, wire, end);
    }
  }
  return { records, timestamps, matchSeqNum, fencingToken };
}

function readAppendRecord(
  reader: WireReader,
  end: number,
): { record: AppendRecord; timestamp: number | bigint | undefined } {
  let timestamp: number | bigint | undefined;
  const headers: Header[] = [];
  let body: Uint8Array = emptyBytes;
  while (reader.position < end) {
    const [field, wire] = reader.tag();
    if (field === 1) {
      expectWire(field, wire, wireVarint);
      timestamp = reader.varint64();
    } else if (field === 2) {
      expectWire(field, wire, wireLengthDelimited);
      headers.push(readHeader(reader, reader.messageEnd(end)));
    } else if (field === 3) {
      expectWire(field, wire, wireLengthDelimited);
      body = reader.bytes(reader.lengthWithin(end));
    } else {
      reader.skip(field, wire, end);
    }
  }
  reader.expectAt(end);
  return { record: { headers, body }, timestamp };
}

function readHeader(reader: WireReader, end: number): Header {
  let name: Uint8Array = emptyBytes;
  let value: Uint8Array = emptyBytes;
  while (reader.position < end) {
    const [field, wire] = reader.tag();
    if (field === 1) {
      expectWire(field, wire, wireLengthDelimited);
      name = reader.bytes(reader.lengthWithin(end));
    } else if (field === 2) {
      expectWire(field, wire, wireLengthDelimited);
      value = reader.bytes(reader.lengthWithin(end));
    } else {
      reader.skip(field, wire, end);
    }
  }
  reader.expectAt(end);
  return { name, value };
}

const emptyBytes = new Uint8Array(0);

function decodeUtf8(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch (error) {
    throw new MalformedError("invalid UTF-8 in a string field", { cause: error });
  }
}

function expectWire(field: number, wire: number, expected: number): void {
  if (wire !== expected) {
    throw new MalformedError(`field ${field} has wire type ${wire}, expected ${expected}`);
  }
}

/** Reads protobuf wire values from one buffer; `position` is the next byte's offset. */
class WireReader {
  readonly length: number;
  position = 0;

  constructor(private readonly input: Uint8Array) {
    this.length = input.length;
  }

  /**
   * A field's number and wire type; a tag past 32 bits, field 0 and wire types 6 and 7 are
   * malformed (protobuf-es's checks).
   */
  tag(): [number, number] {
    const start = this.position;
    const tag = this.varint32();
    const bytesRead = this.position - start;
    if (bytesRead > 5 || (bytesRead === 5 && this.input[this.position - 1]! > 0x0f)) {
      throw new MalformedError("illegal tag: varint overflows uint32");
    }
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === 0 || wire > wireFixed32) {
      throw new MalformedError(`illegal tag: field no ${field} wire type ${wire}`);
    }
    return [field, wire];
  }

  /** A length-delimited field's length, which must end by `end`. */
  lengthWithin(end: number): number {
    const length = this.varint32();
    if (this.position + length > end) throw new MalformedError("premature EOF");
    return length;
  }

  /** Where a nested message that starts here ends (its length read), within `end`. */
  messageEnd(end: number): number {
    const length = this.lengthWithin(end);
    return this.position + length;
  }

  /** A nested message ended exactly at its declared end. */
  expectAt(end: number): void {
    if (this.position !== end) throw new MalformedError("a field crosses its message's end");
  }

  /** `length` bytes, as a view of the input. */
  bytes(length: number): Uint8Array {
    if (length === 0) return emptyBytes;
    if (this.position + length > this.length) throw new MalformedError("premature EOF");
    const view = this.input.subarray(this.position, this.position + length);
    this.position += length;
    return view;
  }

  /** A varint of at most 32 bits (tags, lengths): protobuf-es's `uint32`, up to 10 bytes read. */
  varint32(): number {
    let value = 0;
    for (let shift = 0; shift < 70; shift += 7) {
      const byte = this.byte();
      if (shift < 32) value |= (byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return value >>> 0;
    }
    throw new MalformedError("invalid varint");
  }

  /** A u64 varint: a number below 2^49 (7 bytes), else a bigint of its low 64 bits. */
  varint64(): number | bigint {
    let value = 0;
    let multiplier = 1;
    for (let i = 0; i < 7; i++) {
      const byte = this.byte();
      value += (byte & 0x7f) * multiplier;
      if ((byte & 0x80) === 0) return value;
      multiplier *= 0x80;
    }
    let big = BigInt(value);
    for (let shift = 49n; shift < 70n; shift += 7n) {
      const byte = this.byte();
      big |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return BigInt.asUintN(64, big);
    }
    throw new MalformedError("invalid varint");
  }

  /** Skips an unknown field's value (a group up to its matching end tag), within `end`. */
  skip(field: number, wire: number, end: number, depth = 0): void {
    switch (wire) {
      case wireVarint:
        this.varint64();
        return;
      case wireFixed64:
        this.skipBytes(8, end);
        return;
      case wireLengthDelimited:
        this.skipBytes(this.lengthWithin(end), end);
        return;
      case wireFixed32:
        this.skipBytes(4, end);
        return;
      case wireStartGroup:
        if (depth >= groupDepthMax) throw new MalformedError("groups nested too deep");
        for (;;) {
          if (this.position >= end) throw new MalformedError("premature EOF");
          const [inner, innerWire] = this.tag();
          if (innerWire === wireEndGroup) {
            if (inner !== field) throw new MalformedError("invalid end group tag");
            return;
          }
          this.skip(inner, innerWire, end, depth + 1);
        }
      default:
        // An end-group tag outside a group.
        throw new MalformedError("invalid end group tag");
    }
  }

  private skipBytes(length: number, end: number): void {
    if (this.position + length > end) throw new MalformedError("premature EOF");
    this.position += length;
  }

  private byte(): number {
    if (this.position >= this.length) throw new MalformedError("premature EOF");
    const byte = this.input[this.position]!;
    this.position += 1;
    return byte;
  }
}
