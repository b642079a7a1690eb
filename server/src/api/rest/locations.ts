/**
 * The locations routes (S2's `/v1/locations`, `/v1/locations/default`; not in the OpenAPI file):
 * one server is one location, so the list holds that one, it is the default, and setting the
 * default to it is the only change there is. lite answers 501 here; S2 answers with its regions,
 * and the official SDK's location tests (and its "creates with location" basin test) need a list
 * to pick from. A basin's `location` stays as lite has it: checked, ignored, rendered `null`.
 */
import { invalid } from "../../core/errors.js";
import { sendJson } from "../http/request-context.js";
import { readJsonBody, readLocationName } from "../json/json-body.js";
import { type Route, route } from "../router.js";

/** `LocationInfo`: this server's one location. */
export const serverLocation = { name: "local", is_private: false } as const;

export function locationRoutes(): Route[] {
  return [
    route("GET", "/v1/locations", async ({ response }) => {
      sendJson(response, 200, [serverLocation]);
    }),
    route("GET", "/v1/locations/default", async ({ response }) => {
      sendJson(response, 200, serverLocation);
    }),
    // `SetDefaultLocationRequest` is a bare JSON string: a location name.
    route("PUT", "/v1/locations/default", async ({ request, response }) => {
      const name = readLocationName(await readJsonBody(request), "");
      if (name !== serverLocation.name) {
        throw invalid(
          `unknown location \`${name}\`: this server has one, \`${serverLocation.name}\``,
        );
      }
      sendJson(response, 200, serverLocation);
    }),
  ];
}
