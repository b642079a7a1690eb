/**
 * The init file (`--init-file`, env `S2LITE_INIT_FILE`; S2-API.md §8.3): declarative basins and
 * streams applied at start with ensure semantics (create what is missing, make existing configs
 * match), so applying it again changes nothing. Its JSON differs from the REST JSON: retention is
 * `"infinite"` or a humantime duration (`"7days"`, `"1w"`, `"2h 30m"`), and delete-on-empty takes
 * `min_age` as a humantime duration. Unknown keys, duplicate names and zero ages are rejected.
 */
import type {
  BasinConfig,
  RetentionPolicy,
  StreamConfigInput,
  TimestampingConfigInput,
} from "../core/config.js";
import { isEncryptionAlgorithm, isStorageClass, isTimestampingMode } from "../core/config.js";
import { validateBasinName, validateStreamName } from "../core/names.js";
import type { Service } from "./service.js";

/** Raised for an init file that does not parse or validate; the message says where. */
export class InitFileError extends Error {
  override readonly name = "InitFileError";
}

export interface InitStream {
  readonly name: string;
  readonly config: StreamConfigInput | undefined;
}

export interface InitBasin {
  readonly name: string;
  readonly config: BasinConfig | undefined;
  readonly streams: readonly InitStream[];
}

export interface InitSpec {
  readonly basins: readonly InitBasin[];
}

const secondsPerUnit: Readonly<Record<string, number>> = {
  ms: 0.001,
  msec: 0.001,
  s: 1,
  sec: 1,
  secs: 1,
  second: 1,
  seconds: 1,
  m: 60,
  min: 60,
  mins: 60,
  minute: 60,
  minutes: 60,
  h: 3600,
  hr: 3600,
  hrs: 3600,
  hour: 3600,
  hours: 3600,
  d: 86_400,
  day: 86_400,
  days: 86_400,
  w: 604_800,
  week: 604_800,
  weeks: 604_800,
  M: 2_630_016,
  month: 2_630_016,
  months: 2_630_016,
  y: 31_557_600,
  year: 31_557_600,
  years: 31_557_600,
};

/** Parses a humantime duration ("7days", "1w", "2h 30m") into whole seconds. */
export function parseHumantimeSecs(text: string, where: string): number {
  const parts = text.trim().match(/\d+\s*[A-Za-z]+/g);
  const rebuilt = (parts ?? []).join("").replace(/\s+/g, "");
  if (parts === null || rebuilt !== text.replace(/\s+/g, "")) {
    throw new InitFileError(`${where}: not a duration. value=\`${text}\``);
  }
  let secs = 0;
  for (const part of parts) {
    const [, amount, unit] = /^(\d+)\s*([A-Za-z]+)$/.exec(part)!;
    const factor = secondsPerUnit[unit!];
    if (factor === undefined)
      throw new InitFileError(`${where}: unknown duration unit. unit=\`${unit}\``);
    secs += Number(amount) * factor;
  }
  return Math.floor(secs);
}

type JsonObject = Record<string, unknown>;

function objectAt(value: unknown, where: string, allowed: readonly string[]): JsonObject {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InitFileError(`${where}: expected an object`);
  }
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw new InitFileError(`${where}: unknown key. key=\`${key}\``);
  }
  return value as JsonObject;
}

function optionalBool(object: JsonObject, key: string, where: string): boolean | undefined {
  const value = object[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "boolean") throw new InitFileError(`${where}.${key}: expected a boolean`);
  return value;
}

function parseStreamConfig(value: unknown, where: string): StreamConfigInput {
  const object = objectAt(value, where, [
    "storage_class",
    "retention_policy",
    "timestamping",
    "delete_on_empty",
  ]);
  const config: {
    storageClass?: StreamConfigInput["storageClass"];
    retentionPolicy?: RetentionPolicy;
    timestamping?: TimestampingConfigInput;
    deleteOnEmpty?: { minAgeSecs?: number };
  } = {};
  const storageClass = object["storage_class"];
  if (storageClass !== undefined && storageClass !== null) {
    if (!isStorageClass(storageClass))
      throw new InitFileError(`${where}.storage_class: unknown value`);
    config.storageClass = storageClass;
  }
  const retention = object["retention_policy"];
  if (retention !== undefined && retention !== null) {
    if (typeof retention !== "string")
      throw new InitFileError(`${where}.retention_policy: expected a string`);
    if (retention.trim() === "infinite") {
      config.retentionPolicy = { kind: "infinite" };
    } else {
      const ageSecs = parseHumantimeSecs(retention, `${where}.retention_policy`);
      if (ageSecs <= 0)
        throw new InitFileError(`${where}.retention_policy: age must be greater than 0`);
      config.retentionPolicy = { kind: "age", ageSecs };
    }
  }
  if (object["timestamping"] !== undefined && object["timestamping"] !== null) {
    const timestamping = objectAt(object["timestamping"], `${where}.timestamping`, [
      "mode",
      "uncapped",
    ]);
    const mode = timestamping["mode"];
    if (mode !== undefined && mode !== null && !isTimestampingMode(mode)) {
      throw new InitFileError(`${where}.timestamping.mode: unknown value`);
    }
    const uncapped = optionalBool(timestamping, "uncapped", `${where}.timestamping`);
    config.timestamping = {
      ...(mode !== undefined && mode !== null && { mode }),
      ...(uncapped !== undefined && { uncapped }),
    };
  }
  if (object["delete_on_empty"] !== undefined && object["delete_on_empty"] !== null) {
    const doe = objectAt(object["delete_on_empty"], `${where}.delete_on_empty`, ["min_age"]);
    const minAge = doe["min_age"];
    if (minAge !== undefined && minAge !== null) {
      if (typeof minAge !== "string")
        throw new InitFileError(`${where}.delete_on_empty.min_age: expected a string`);
      config.deleteOnEmpty = {
        minAgeSecs: parseHumantimeSecs(minAge, `${where}.delete_on_empty.min_age`),
      };
    }
  }
  return config;
}

function parseBasinConfig(value: unknown, where: string): BasinConfig {
  const object = objectAt(value, where, [
    "default_stream_config",
    "stream_cipher",
    "create_stream_on_append",
    "create_stream_on_read",
  ]);
  const cipher = object["stream_cipher"];
  if (cipher !== undefined && cipher !== null && !isEncryptionAlgorithm(cipher)) {
    throw new InitFileError(`${where}.stream_cipher: unknown value`);
  }
  const defaults = object["default_stream_config"];
  return {
    defaultStreamConfig:
      defaults === undefined || defaults === null
        ? null
        : parseStreamConfig(defaults, `${where}.default_stream_config`),
    streamCipher: cipher === undefined || cipher === null ? null : cipher,
    createStreamOnAppend: optionalBool(object, "create_stream_on_append", where) ?? false,
    createStreamOnRead: optionalBool(object, "create_stream_on_read", where) ?? false,
  };
}

/** Parses and validates an init file's JSON text. */
export function parseInitFile(text: string): InitSpec {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new InitFileError(`not JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  const root = objectAt(json, "init file", ["basins"]);
  const basinsJson = root["basins"] ?? [];
  if (!Array.isArray(basinsJson)) throw new InitFileError("basins: expected an array");
  const seenBasins = new Set<string>();
  const basins = basinsJson.map((basinJson, i): InitBasin => {
    const where = `basins[${i}]`;
    const object = objectAt(basinJson, where, ["name", "config", "streams"]);
    const name = object["name"];
    if (typeof name !== "string") throw new InitFileError(`${where}.name: expected a string`);
    const reason = validateBasinName(name);
    if (reason !== undefined) throw new InitFileError(`${where}.name: ${reason}`);
    if (seenBasins.has(name))
      throw new InitFileError(`${where}: duplicate basin. name=\`${name}\``);
    seenBasins.add(name);
    const streamsJson = object["streams"] ?? [];
    if (!Array.isArray(streamsJson)) throw new InitFileError(`${where}.streams: expected an array`);
    const seenStreams = new Set<string>();
    const streams = streamsJson.map((streamJson, j): InitStream => {
      const streamWhere = `${where}.streams[${j}]`;
      const streamObject = objectAt(streamJson, streamWhere, ["name", "config"]);
      const streamName = streamObject["name"];
      if (typeof streamName !== "string")
        throw new InitFileError(`${streamWhere}.name: expected a string`);
      const streamReason = validateStreamName(streamName);
      if (streamReason !== undefined)
        throw new InitFileError(`${streamWhere}.name: ${streamReason}`);
      if (seenStreams.has(streamName)) {
        throw new InitFileError(`${streamWhere}: duplicate stream. name=\`${streamName}\``);
      }
      seenStreams.add(streamName);
      const config = streamObject["config"];
      return {
        name: streamName,
        config:
          config === undefined || config === null
            ? undefined
            : parseStreamConfig(config, `${streamWhere}.config`),
      };
    });
    const config = object["config"];
    return {
      name,
      config:
        config === undefined || config === null
          ? undefined
          : parseBasinConfig(config, `${where}.config`),
      streams,
    };
  });
  return { basins };
}

/** Streams of one basin ensured at once at start (each waits for a WAL flush). */
const initStreamsConcurrency = 64;

/** Applies an init spec with ensure semantics; returns what changed, for the start-up log. */
export async function applyInitSpec(service: Service, spec: InitSpec): Promise<string[]> {
  const changes: string[] = [];
  for (const basin of spec.basins) {
    const { result } = await service.basins.ensure({ name: basin.name, config: basin.config });
    if (result !== "noop") changes.push(`basin ${basin.name} ${result}`);
    // Side by side: each ensure is a control op waiting for a WAL flush, and one at a time a
    // file of 10,000 streams took ~55 s; together they share flushes. Changes keep file order.
    const results: string[] = new Array(basin.streams.length);
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      // After a failure the others stop at their next stream: start-up fails on the first error.
      for (let i = next++; i < basin.streams.length && !failed; i = next++) {
        const stream = basin.streams[i]!;
        try {
          const ensured = await service.streams.ensure({
            basin: basin.name,
            name: stream.name,
            config: stream.config,
          });
          results[i] = ensured.result;
        } catch (error) {
          failed = true;
          throw error;
        }
      }
    };
    await Promise.all(Array.from({ length: initStreamsConcurrency }, worker));
    basin.streams.forEach((stream, i) => {
      if (results[i] !== "noop") changes.push(`stream ${basin.name}/${stream.name} ${results[i]}`);
    });
  }
  return changes;
}
