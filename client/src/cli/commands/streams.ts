/**
 * Stream commands (`tributary.v1.BasinService`): list-streams, create-stream, get-stream-config,
 * reconfigure-stream, delete-stream. A stream is named `s2://basin/stream`; a listing takes
 * `s2://basin[/prefix]`.
 */
import type { StreamInfo } from "@tributary/protocol/gen/tributary/v1/config_pb.js";
import { positionalsOf, stringFlag, UsageError } from "../args.js";
import type { Command, CommandContext } from "../command.js";
import {
  configRows,
  streamConfigFlags,
  streamConfigFlagsHelp,
  streamConfigFromFlags,
  streamConfigToJson,
} from "../config-flags.js";
import { isoOf, limitOf, listFlags, listPageSizeMax } from "../listing.js";
import { writeJson, writeLine, writeTable, writeTableOrJson } from "../output.js";
import { parseListUri, parseStreamUri, streamUri } from "../uri.js";

function streamJson(basin: string, info: StreamInfo): Record<string, unknown> {
  return {
    name: info.name,
    uri: streamUri(basin, info.name),
    state: info.deletedAt === undefined ? "active" : "deleting",
    created_at: isoOf(info.createdAt),
    deleted_at: info.deletedAt === undefined ? null : isoOf(info.deletedAt),
  };
}

function writeStreamConfig(context: CommandContext, json: Record<string, unknown>): void {
  if (context.json) writeJson(context.io, json);
  else writeTable(context.io, { columns: ["field", "value"], rows: configRows(json) }, "");
}

const listStreams: Command = {
  name: "list-streams",
  summary: "List the streams of a basin",
  usage: "list-streams s2://basin[/prefix] [--start-after NAME] [--limit N] [--json]",
  flags: listFlags,
  help: [
    "  s2://basin/prefix   only streams whose name starts with prefix (or --prefix P)",
    "  --start-after NAME  only streams after NAME",
    "  -n, --limit N       at most N streams",
  ],
  async run(args, context) {
    const [uri] = positionalsOf(args, ["basin"]);
    const { basin, prefix: uriPrefix } = parseListUri(uri!);
    const flagPrefix = stringFlag(args, "prefix");
    if (flagPrefix !== undefined && uriPrefix !== "") {
      throw new UsageError("give the prefix in the URI or with --prefix, not both");
    }
    const limit = limitOf(args);
    const streams: StreamInfo[] = [];
    const listing = context.client().listAllStreams(basin, {
      prefix: flagPrefix ?? uriPrefix,
      startAfter: stringFlag(args, "start-after") ?? "",
      ...(limit !== undefined && { pageSize: Math.min(limit, listPageSizeMax) }),
    });
    for await (const info of listing) {
      if (limit !== undefined && streams.length >= limit) break;
      streams.push(info);
    }
    writeTableOrJson(context.io, {
      json: context.json,
      table: {
        columns: ["uri", "state", "created_at"],
        rows: streams.map((info) => {
          const json = streamJson(basin, info);
          return [String(json["uri"]), String(json["state"]), String(json["created_at"])];
        }),
      },
      objects: streams.map((info) => streamJson(basin, info)),
      empty: "no streams",
    });
    return 0;
  },
};

const createStream: Command = {
  name: "create-stream",
  summary: "Create a stream",
  usage: "create-stream s2://basin/stream [config flags] [--json]",
  flags: streamConfigFlags,
  help: streamConfigFlagsHelp,
  async run(args, context) {
    const [uri] = positionalsOf(args, ["stream"]);
    const { basin, stream } = parseStreamUri(uri!);
    const { config, paths } = streamConfigFromFlags(args);
    const response = await context.client().basins.createStream({
      basin,
      stream,
      ...(paths.length > 0 && { config }),
    });
    if (context.json) {
      writeJson(
        context.io,
        response.info === undefined ? { name: stream } : streamJson(basin, response.info),
      );
    } else {
      writeLine(context.io, `created stream ${streamUri(basin, stream)}`);
    }
    return 0;
  },
};

const getStreamConfig: Command = {
  name: "get-stream-config",
  summary: "Get a stream's config",
  usage: "get-stream-config s2://basin/stream [--json]",
  flags: {},
  help: [],
  async run(args, context) {
    const [uri] = positionalsOf(args, ["stream"]);
    const { basin, stream } = parseStreamUri(uri!);
    const { config } = await context.client().basins.getStreamConfig({ basin, stream });
    writeStreamConfig(context, streamConfigToJson(config));
    return 0;
  },
};

const reconfigureStream: Command = {
  name: "reconfigure-stream",
  summary: "Change a stream's config (only the flags given)",
  usage: "reconfigure-stream s2://basin/stream <config flags> [--json]",
  flags: streamConfigFlags,
  help: streamConfigFlagsHelp,
  async run(args, context) {
    const [uri] = positionalsOf(args, ["stream"]);
    const { basin, stream } = parseStreamUri(uri!);
    const { config, paths } = streamConfigFromFlags(args);
    if (paths.length === 0) throw new UsageError("nothing to change: give at least one flag");
    const response = await context.client().basins.reconfigureStream({
      basin,
      stream,
      config,
      mask: { paths: [...paths] },
    });
    writeStreamConfig(context, streamConfigToJson(response.config));
    return 0;
  },
};

const deleteStream: Command = {
  name: "delete-stream",
  summary: "Delete a stream (in the background)",
  usage: "delete-stream s2://basin/stream [--json]",
  flags: {},
  help: [],
  async run(args, context) {
    const [uri] = positionalsOf(args, ["stream"]);
    const { basin, stream } = parseStreamUri(uri!);
    await context.client().basins.deleteStream({ basin, stream });
    if (context.json) writeJson(context.io, { basin, stream, deleted: true });
    else writeLine(context.io, `deleting stream ${streamUri(basin, stream)}`);
    return 0;
  },
};

/** The stream commands. */
export const streamCommands: readonly Command[] = [
  listStreams,
  createStream,
  getStreamConfig,
  reconfigureStream,
  deleteStream,
];
