/**
 * The object store a crash-test child process opens from its flags: a local directory, or S3
 * (moto) at an endpoint with the test client settings.
 */
import { createLocalFsObjectStore } from "../../src/storage/object-store/local-fs.js";
import type { ObjectStore } from "../../src/storage/object-store/object-store.js";
import { createS3ObjectStore } from "../../src/storage/object-store/s3.js";
import { s3TestClientConfig } from "./moto.js";

/** `required(name)` returns a flag's value or exits; `fail` reports a bad `--store`. */
export function openChildStore(
  required: (name: "store" | "local-root" | "endpoint" | "bucket") => string,
  fail: (message: string) => never,
): ObjectStore {
  const kind = required("store");
  if (kind === "local-fs") return createLocalFsObjectStore({ root: required("local-root") });
  if (kind === "s3") {
    const endpoint = required("endpoint");
    const config = s3TestClientConfig(endpoint);
    return createS3ObjectStore({
      bucket: required("bucket"),
      endpoint,
      region: config.region,
      forcePathStyle: config.forcePathStyle,
      credentials: config.credentials,
    });
  }
  return fail(`bad --store ${kind}`);
}
