/**
 * The entry of a `record-crypto-pool.ts` worker thread: it runs one job per message, in the order
 * received, and posts the result back, its envelopes transferred (the job's key is erased first).
 * It holds no state between jobs. An exception here is a bug (jobs are built by
 * `record-encryption.ts`, and a failed tag is a result, not an exception): it ends the worker, and
 * the pool reports it for that job.
 */
import { parentPort } from "node:worker_threads";
import { assert } from "./assert.js";
import {
  type RecordCryptoJob,
  type RecordCryptoResult,
  recordCryptoJobTransfers,
  runRecordCryptoJob,
} from "./record-crypto-job.js";

const port = parentPort;
assert(port !== null, "record-crypto-worker runs as a worker thread");
port.on("message", (job: RecordCryptoJob) => {
  const result: RecordCryptoResult = runRecordCryptoJob(job);
  job.key.fill(0);
  port.postMessage(result, recordCryptoJobTransfers({ envelopes: result.envelopes }));
});
