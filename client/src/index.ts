/** The Tributary client's public API. */
export * from "./append-session.js";
export * from "./client.js";
export * from "./node-transport.js";
export * from "./read-session.js";
export * from "./records.js";
export * from "./retry.js";
