/**
 * The Tributary protocol as data: the error table, the metadata keys of failed RPCs and the wire
 * limits, shared by `@tributary/server` and `@tributary/client`. The generated `s2.v1` and
 * `tributary.v1` messages and services are under `@tributary/protocol/gen/…`, and the
 * `tributary` command line that both packages install under `@tributary/protocol/command`.
 */
export * from "./errors.js";
export * from "./metadata.js";
export * from "./wire.js";
