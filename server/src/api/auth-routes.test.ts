// Goal: the access table covers every REST route and every `tributary.v1` RPC, so that no route
// or method is open by accident (a missing entry is refused at run time, this makes it a test
// failure first), and names only real routes, methods and operations (a stale entry can hide a
// misspelt one). Method: compare the table's keys with the route table and the generated service
// descriptors.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AccountService } from "@tributary/protocol/gen/tributary/v1/account_pb.js";
import { BasinService } from "@tributary/protocol/gen/tributary/v1/basin_pb.js";
import { StreamService } from "@tributary/protocol/gen/tributary/v1/stream_pb.js";
import { isOperation } from "../core/operations.js";
import type { Service } from "../service/service.js";
import { restRouteAccess, rpcMethodAccess } from "./auth-routes.js";
import type { ApiMetrics } from "./metrics.js";
import { createRoutes } from "./routes.js";
import type { FrameBudget } from "./frame-budget.js";
import type { SessionSlots } from "./session-slots.js";
import type { TokenWatch } from "./token-watch.js";

/** The REST routes, built on stub dependencies: route handlers are closures, never called here. */
function routesWithoutDeps() {
  return createRoutes({
    service: {} as Service,
    metrics: {} as ApiMetrics,
    tokenWatch: {} as TokenWatch,
    s2sFrameStallTimeoutMs: 0,
    sessionSlots: {} as SessionSlots,
    frameBudget: {} as FrameBudget,
  });
}

describe("access table", () => {
  it("has an entry for every REST route", () => {
    const routes = routesWithoutDeps();
    for (const route of routes) {
      const name = `${route.method} /${route.pattern.join("/")}`;
      assert.ok(restRouteAccess[name] !== undefined, `no access rule for ${name}`);
    }
  });

  it("has an entry for every RPC method", () => {
    for (const service of [AccountService, BasinService, StreamService]) {
      for (const method of service.methods) {
        const name = `${service.typeName}/${method.name}`;
        assert.ok(rpcMethodAccess[name] !== undefined, `no access rule for ${name}`);
      }
    }
  });

  it("names only real REST routes and RPC methods", () => {
    const routes = routesWithoutDeps();
    const routeNames = new Set(
      routes.map((route) => `${route.method} /${route.pattern.join("/")}`),
    );
    for (const name of Object.keys(restRouteAccess)) {
      assert.ok(routeNames.has(name), `access rule for a route that does not exist: ${name}`);
    }
    const methodNames = new Set(
      [AccountService, BasinService, StreamService].flatMap((service) =>
        service.methods.map((method) => `${service.typeName}/${method.name}`),
      ),
    );
    for (const name of Object.keys(rpcMethodAccess)) {
      assert.ok(methodNames.has(name), `access rule for a method that does not exist: ${name}`);
    }
  });

  it("names only S2 operations", () => {
    for (const access of [...Object.values(restRouteAccess), ...Object.values(rpcMethodAccess)]) {
      for (const operation of access.operations) assert.ok(isOperation(operation), operation);
    }
  });
});
