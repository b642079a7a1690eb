/** The Tributary client's public API in Node (browsers import `browser.ts`). */
export * from "./append-session.js";
export * from "./client.js";
export * from "./node-transport.js";
export * from "./read-session.js";
export * from "./records.js";
export * from "./retry.js";
export type { AppendSessionMode } from "./tributary-client.js";
