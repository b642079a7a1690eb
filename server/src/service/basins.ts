/**
 * Basin operations (S2-API.md §6.3–§6.5): create (with `S2-Request-Token` idempotency), ensure,
 * get, list, reconfigure, delete. Inputs arrive validated in shape by the API; names and configs
 * are validated here (422 `invalid`). Every change is a control entry in the WAL, answered when
 * durable.
 */
import {
  type BasinConfig,
  type BasinReconfiguration,
  basinConfigEquals,
  defaultBasinConfig,
  encodeBasinConfig,
  normalizeBasinConfig,
  reconfigureBasin,
  validateBasinConfig,
  validateBasinReconfiguration,
} from "../core/config.js";
import {
  basinAlreadyExists,
  basinDeletionPending,
  basinNotFound,
  invalid,
} from "../core/errors.js";
import { validateBasinName } from "../core/names.js";
import type { BasinRecord } from "../storage/wal/entries.js";
import { toS2Error } from "../streamer/streamer.js";
import {
  type BasinInfo,
  basinConfigOf,
  basinInfoOf,
  createKeyOf,
  type ProvisionResult,
  type ServiceContext,
} from "./context.js";
import { type ListOptions, type ListPage, listPage } from "./list.js";

function validName(name: string): void {
  const reason = validateBasinName(name);
  if (reason !== undefined) throw invalid(reason);
}

function validConfig(config: BasinConfig): BasinConfig {
  const reason = validateBasinConfig(config);
  if (reason !== undefined) throw invalid(reason);
  return normalizeBasinConfig(config);
}

export class BasinService {
  constructor(private readonly context: ServiceContext) {}

  /** Creates a basin; 409 if it exists, unless the same request token and config created it. */
  async create(options: {
    readonly name: string;
    readonly config?: BasinConfig | undefined;
    readonly requestToken?: string | undefined;
  }): Promise<{ info: BasinInfo; result: ProvisionResult }> {
    this.context.metrics.recordOp("create-basin");
    validName(options.name);
    const config = validConfig(options.config ?? defaultBasinConfig());
    const createKey = createKeyOf(options.requestToken, encodeBasinConfig(config));
    const existing = this.context.basinForChange(options.name);
    if (existing !== undefined) {
      if (existing.deletedAtMs !== null) throw basinDeletionPending(options.name);
      if (createKey !== null && existing.createKey === createKey) {
        return { info: basinInfoOf(existing), result: "noop" };
      }
      throw basinAlreadyExists(options.name);
    }
    const record: BasinRecord = {
      name: options.name,
      config: encodeBasinConfig(config),
      createdAtMs: this.context.clock.nowMs(),
      deletedAtMs: null,
      createKey,
    };
    await this.commit(record);
    return { info: basinInfoOf(record), result: "created" };
  }

  /** Creates the basin, or replaces its whole config (S2-API.md §6.3 `PUT /basins/{basin}`). */
  async ensure(options: {
    readonly name: string;
    readonly config?: BasinConfig | undefined;
  }): Promise<{
    info: BasinInfo;
    result: ProvisionResult;
  }> {
    validName(options.name);
    const config = validConfig(options.config ?? defaultBasinConfig());
    const existing = this.context.basinForChange(options.name);
    if (existing === undefined) return this.create({ name: options.name, config });
    this.context.metrics.recordOp("create-basin");
    if (existing.deletedAtMs !== null) throw basinDeletionPending(options.name);
    if (basinConfigEquals(basinConfigOf(existing), config))
      return { info: basinInfoOf(existing), result: "noop" };
    const record: BasinRecord = { ...existing, config: encodeBasinConfig(config) };
    await this.commit(record);
    return { info: basinInfoOf(record), result: "updated" };
  }

  /** The basin's config (durable); still answered while the basin is being deleted. */
  getConfig(name: string): BasinConfig {
    this.context.metrics.recordOp("get-basin-config", name);
    validName(name);
    const record = this.context.catalog.durable.basins.get(name);
    if (record === undefined) throw basinNotFound(name);
    return basinConfigOf(record);
  }

  /** Applies a PATCH; affects only streams created afterwards. */
  async reconfigure(name: string, change: BasinReconfiguration): Promise<BasinConfig> {
    this.context.metrics.recordOp("reconfigure-basin", name);
    validName(name);
    const reason = validateBasinReconfiguration(change);
    if (reason !== undefined) throw invalid(reason);
    const existing = this.context.activeBasin(name);
    const config = validConfig(reconfigureBasin(basinConfigOf(existing), change));
    await this.commit({ ...existing, config: encodeBasinConfig(config) });
    return config;
  }

  /** Durable basins, deleting ones included (with `deletedAtMs`). */
  list(options: ListOptions): ListPage<BasinInfo> {
    this.context.metrics.recordOp("list-basins");
    const page = listPage(
      this.context.catalog.durable.basins.values(),
      (basin) => basin.name,
      options,
    );
    return { items: page.items.map(basinInfoOf), hasMore: page.hasMore };
  }

  /** Marks the basin deleted and removes its streams and then it in the background. */
  async delete(name: string): Promise<void> {
    this.context.metrics.recordOp("delete-basin");
    validName(name);
    const existing = this.context.basinForChange(name);
    if (existing === undefined) throw basinNotFound(name);
    if (existing.deletedAtMs !== null) return;
    const marked: BasinRecord = { ...existing, deletedAtMs: this.context.clock.nowMs() };
    await this.commit(marked);
    this.context.removeBasinInBackground(marked);
  }

  private async commit(record: BasinRecord): Promise<void> {
    try {
      await this.context.catalog.commit({ op: "basin.put", basin: record });
    } catch (error) {
      throw toS2Error(error);
    }
  }
}
