/**
 * Basin commands (`tributary.v1.AccountService`): list-basins, create-basin, get-basin-config,
 * reconfigure-basin, delete-basin. A basin is named `s2://basin` or by its bare name.
 */
import { BasinState, type BasinInfo } from "@tributary/protocol/gen/tributary/v1/config_pb.js";
import { positionalsOf, stringFlag, UsageError } from "../args.js";
import type { Command, CommandContext } from "../command.js";
import {
  basinConfigFlags,
  basinConfigFlagsHelp,
  basinConfigFromFlags,
  basinConfigToJson,
  configRows,
} from "../config-flags.js";
import { isoOf, limitOf, listFlags, listPageSizeMax } from "../listing.js";
import { writeJson, writeLine, writeTable, writeTableOrJson } from "../output.js";
import { parseBasinUri } from "../uri.js";

function basinStateName(info: BasinInfo): string {
  return info.state === BasinState.DELETING ? "deleting" : "active";
}

function basinJson(info: BasinInfo): Record<string, unknown> {
  return {
    name: info.name,
    state: basinStateName(info),
    created_at: isoOf(info.createdAt),
    deleted_at: info.deletedAt === undefined ? null : isoOf(info.deletedAt),
  };
}

function writeBasinConfig(context: CommandContext, json: Record<string, unknown>): void {
  if (context.json) writeJson(context.io, json);
  else writeTable(context.io, { columns: ["field", "value"], rows: configRows(json) }, "");
}

const listBasins: Command = {
  name: "list-basins",
  summary: "List basins",
  usage: "list-basins [--prefix P] [--start-after NAME] [--limit N] [--json]",
  flags: listFlags,
  help: [
    "  --prefix P          only basins whose name starts with P",
    "  --start-after NAME  only basins after NAME",
    "  -n, --limit N       at most N basins",
  ],
  async run(args, context) {
    positionalsOf(args, []);
    const limit = limitOf(args);
    const basins: BasinInfo[] = [];
    const listing = context.client().listAllBasins({
      prefix: stringFlag(args, "prefix") ?? "",
      startAfter: stringFlag(args, "start-after") ?? "",
      ...(limit !== undefined && { pageSize: Math.min(limit, listPageSizeMax) }),
    });
    for await (const info of listing) {
      if (limit !== undefined && basins.length >= limit) break;
      basins.push(info);
    }
    writeTableOrJson(context.io, {
      json: context.json,
      table: {
        columns: ["name", "state", "created_at"],
        rows: basins.map((info) => [info.name, basinStateName(info), isoOf(info.createdAt)]),
      },
      objects: basins.map(basinJson),
      empty: "no basins",
    });
    return 0;
  },
};

const createBasin: Command = {
  name: "create-basin",
  summary: "Create a basin",
  usage: "create-basin s2://basin [config flags] [--json]",
  flags: basinConfigFlags,
  help: basinConfigFlagsHelp,
  async run(args, context) {
    const [uri] = positionalsOf(args, ["basin"]);
    const basin = parseBasinUri(uri!);
    const { config, paths } = basinConfigFromFlags(args);
    const response = await context.client().account.createBasin({
      basin,
      ...(paths.length > 0 && { config }),
    });
    if (context.json) {
      writeJson(
        context.io,
        response.info === undefined ? { name: basin } : basinJson(response.info),
      );
    } else {
      writeLine(context.io, `created basin ${basin}`);
    }
    return 0;
  },
};

const getBasinConfig: Command = {
  name: "get-basin-config",
  summary: "Get a basin's config",
  usage: "get-basin-config s2://basin [--json]",
  flags: {},
  help: [],
  async run(args, context) {
    const [uri] = positionalsOf(args, ["basin"]);
    const basin = parseBasinUri(uri!);
    const { config } = await context.client().account.getBasinConfig({ basin });
    writeBasinConfig(context, basinConfigToJson(config));
    return 0;
  },
};

const reconfigureBasin: Command = {
  name: "reconfigure-basin",
  summary: "Change a basin's config (only the flags given)",
  usage: "reconfigure-basin s2://basin <config flags> [--json]",
  flags: basinConfigFlags,
  help: basinConfigFlagsHelp,
  async run(args, context) {
    const [uri] = positionalsOf(args, ["basin"]);
    const basin = parseBasinUri(uri!);
    const { config, paths } = basinConfigFromFlags(args);
    if (paths.length === 0) throw new UsageError("nothing to change: give at least one flag");
    const response = await context.client().account.reconfigureBasin({
      basin,
      config,
      mask: { paths: [...paths] },
    });
    writeBasinConfig(context, basinConfigToJson(response.config));
    return 0;
  },
};

const deleteBasin: Command = {
  name: "delete-basin",
  summary: "Delete a basin and its streams (in the background)",
  usage: "delete-basin s2://basin [--json]",
  flags: {},
  help: [],
  async run(args, context) {
    const [uri] = positionalsOf(args, ["basin"]);
    const basin = parseBasinUri(uri!);
    await context.client().account.deleteBasin({ basin });
    if (context.json) writeJson(context.io, { basin, deleted: true });
    else writeLine(context.io, `deleting basin ${basin}`);
    return 0;
  },
};

/** The basin commands. */
export const basinCommands: readonly Command[] = [
  listBasins,
  createBasin,
  getBasinConfig,
  reconfigureBasin,
  deleteBasin,
];
