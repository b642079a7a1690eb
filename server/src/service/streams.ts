/**
 * Stream operations (S2-API.md §6.2–§6.5): create (idempotent with `S2-Request-Token`), ensure,
 * get config, list, reconfigure, delete. The effective config is resolved against the basin's
 * defaults *at creation* and stored whole (lite's snapshot semantics); the cipher is fixed then.
 */
import {
  encodeStreamConfig,
  encodeStreamConfigInput,
  reconfigureStream,
  resolveStreamConfig,
  type StreamConfig,
  type StreamConfigInput,
  type StreamReconfiguration,
  streamConfigEquals,
  validateStreamConfigInput,
  validateStreamReconfiguration,
} from "../core/config.js";
import {
  invalid,
  streamAlreadyExists,
  streamDeletionPending,
  streamNotFound,
} from "../core/errors.js";
import { validateBasinName, validateStreamName } from "../core/names.js";
import type { StreamRecord } from "../storage/wal/entries.js";
import { toS2Error } from "../streamer/streamer.js";
import {
  basinConfigOf,
  createKeyOf,
  type ProvisionResult,
  type ServiceContext,
  type StreamInfo,
  streamConfigOf,
  streamInfoOf,
} from "./context.js";
import { type ListOptions, type ListPage, listPage } from "./list.js";

function validNames(basin: string, stream: string): void {
  const reason = validateBasinName(basin) ?? validateStreamName(stream);
  if (reason !== undefined) throw invalid(reason);
}

function validInput(config: StreamConfigInput | undefined): void {
  if (config === undefined) return;
  const reason = validateStreamConfigInput(config);
  if (reason !== undefined) throw invalid(reason);
}

export class StreamService {
  constructor(private readonly context: ServiceContext) {}

  /** Creates a stream; 409 if it exists, unless the same request token and config created it. */
  async create(options: {
    readonly basin: string;
    readonly name: string;
    readonly config?: StreamConfigInput | undefined;
    readonly requestToken?: string | undefined;
  }): Promise<{ info: StreamInfo; result: ProvisionResult }> {
    const { basin, name } = options;
    this.context.metrics.recordOp("create-stream", basin);
    validNames(basin, name);
    validInput(options.config);
    const createKey = createKeyOf(
      options.requestToken,
      encodeStreamConfigInput(options.config ?? {}),
    );
    const basinRecord = this.context.activeBasin(basin);
    const existing = this.context.streamForChange(basin, name);
    if (existing !== undefined) {
      if (existing.deletedAtMs !== null) throw streamDeletionPending();
      if (createKey !== null && existing.createKey === createKey) {
        return { info: streamInfoOf(existing), result: "noop" };
      }
      throw streamAlreadyExists({ basin, stream: name });
    }
    const basinConfig = basinConfigOf(basinRecord);
    const record: StreamRecord = {
      basin,
      name,
      streamId: this.context.catalog.allocateStreamId(),
      config: encodeStreamConfig(
        resolveStreamConfig(options.config, basinConfig.defaultStreamConfig),
      ),
      cipher: basinConfig.streamCipher,
      createdAtMs: this.context.clock.nowMs(),
      deletedAtMs: null,
      createKey,
    };
    await this.commit(record);
    return { info: streamInfoOf(record), result: "created" };
  }

  /**
   * Creates the stream, or replaces its config with the request resolved against the *current*
   * basin defaults (S2-API.md §6.3 `PUT /streams/{stream}`).
   */
  async ensure(options: {
    readonly basin: string;
    readonly name: string;
    readonly config?: StreamConfigInput | undefined;
  }): Promise<{ info: StreamInfo; result: ProvisionResult }> {
    const { basin, name } = options;
    validNames(basin, name);
    validInput(options.config);
    const basinRecord = this.context.activeBasin(basin);
    const existing = this.context.streamForChange(basin, name);
    if (existing === undefined) return this.create(options);
    this.context.metrics.recordOp("create-stream", basin);
    if (existing.deletedAtMs !== null) throw streamDeletionPending();
    const config = resolveStreamConfig(
      options.config,
      basinConfigOf(basinRecord).defaultStreamConfig,
    );
    if (streamConfigEquals(streamConfigOf(existing), config))
      return { info: streamInfoOf(existing), result: "noop" };
    await this.commitConfig(existing, config);
    return { info: streamInfoOf(existing), result: "updated" };
  }

  /** The stream's resolved config (durable). Lite does not check the basin: 404 stream. */
  getConfig(basin: string, name: string): StreamConfig {
    this.context.metrics.recordOp("get-stream-config", basin);
    validNames(basin, name);
    const record = this.context.catalog.durable.streams.get(`${basin}\u0000${name}`);
    if (record === undefined) throw streamNotFound({ basin, stream: name });
    if (record.deletedAtMs !== null) throw streamDeletionPending();
    return streamConfigOf(record);
  }

  /** Applies a PATCH; `null` re-resolves a field against the basin defaults of this moment. */
  async reconfigure(
    basin: string,
    name: string,
    change: StreamReconfiguration,
  ): Promise<StreamConfig> {
    this.context.metrics.recordOp("reconfigure-stream", basin);
    validNames(basin, name);
    const reason = validateStreamReconfiguration(change);
    if (reason !== undefined) throw invalid(reason);
    const basinRecord = this.context.activeBasin(basin);
    const existing = this.context.activeStream(basin, name);
    const config = reconfigureStream(
      streamConfigOf(existing),
      change,
      basinConfigOf(basinRecord).defaultStreamConfig,
    );
    await this.commitConfig(existing, config);
    return config;
  }

  /** Durable streams of a basin, deleting ones included; an unknown basin lists nothing. */
  list(basin: string, options: ListOptions): ListPage<StreamInfo> {
    this.context.metrics.recordOp("list-streams", basin);
    const streams = [...this.context.catalog.durable.streams.values()].filter(
      (stream) => stream.basin === basin,
    );
    const page = listPage(streams, (stream) => stream.name, options);
    return { items: page.items.map(streamInfoOf), hasMore: page.hasMore };
  }

  /** Deletes the stream: a terminal trim, then removal in the background. */
  async delete(basin: string, name: string): Promise<void> {
    this.context.metrics.recordOp("delete-stream", basin);
    validNames(basin, name);
    const existing = this.context.streamForChange(basin, name);
    if (existing === undefined) throw streamNotFound({ basin, stream: name });
    await this.context.deleteStream(existing);
  }

  private async commitConfig(existing: StreamRecord, config: StreamConfig): Promise<void> {
    await this.commit({ ...existing, config: encodeStreamConfig(config) });
    this.context.activeStreamer(existing.streamId)?.setConfig(config);
  }

  private async commit(record: StreamRecord): Promise<void> {
    try {
      await this.context.catalog.commit({ op: "stream.put", stream: record });
    } catch (error) {
      throw toS2Error(error);
    }
  }
}
