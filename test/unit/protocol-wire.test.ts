import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import fc from "fast-check";
import { decodeMessage, DELIMITER, encodeMessage, MessageSigner, WireError } from "../../kernel/src/protocol/wire";
import { HeaderFactory, type JupyterMessage } from "../../kernel/src/protocol/messages";
import { ConnectionFileError, endpoint, parseConnectionInfo } from "../../kernel/src/protocol/connection";
import { globToRegExp, HistoryStore } from "../../kernel/src/protocol/history";

const headers = new HeaderFactory();

function sampleMessage(content: Record<string, unknown>, buffers: Buffer[] = []): JupyterMessage {
  return { header: headers.make("execute_request"), parent_header: {}, metadata: {}, content, buffers };
}

test("signature is the hex HMAC-SHA256 of header, parent, metadata and content", () => {
  const signer = new MessageSigner("hmac-sha256", "secret");
  const frames = encodeMessage(sampleMessage({ code: "1 + 2" }), signer);
  assert.ok(frames[0].equals(DELIMITER));
  const expected = createHmac("sha256", "secret");
  for (const frame of frames.slice(2, 6)) expected.update(frame);
  assert.equal(frames[1].toString(), expected.digest("hex"));
});

test("encode then decode returns the same message, identities and buffers", () => {
  const signer = new MessageSigner("hmac-sha256", "k");
  fc.assert(
    fc.property(fc.jsonValue(), fc.array(fc.uint8Array({ maxLength: 16 }), { maxLength: 3 }), (value, raw) => {
      const buffers = raw.map((bytes) => Buffer.from(bytes));
      const message = sampleMessage({ value }, buffers);
      const identity = Buffer.from("client-1");
      const decoded = decodeMessage(encodeMessage(message, signer, [identity]), signer);
      assert.deepEqual(decoded.identities, [identity]);
      assert.deepEqual(decoded.header, message.header);
      // JSON drops -0 and undefined the same way on both ends, so compare through JSON.
      assert.deepEqual(decoded.content, JSON.parse(JSON.stringify({ value })));
      assert.deepEqual(decoded.buffers, buffers);
    }),
    { numRuns: 200 },
  );
});

test("a message signed with another key is rejected", () => {
  const frames = encodeMessage(sampleMessage({}), new MessageSigner("hmac-sha256", "right"));
  assert.throws(() => decodeMessage(frames, new MessageSigner("hmac-sha256", "wrong")), {
    name: "WireError",
    message: /signature does not match/,
  });
});

test("an empty key means unsigned messages, which are accepted", () => {
  const signer = new MessageSigner("hmac-sha256", "");
  const frames = encodeMessage(sampleMessage({ a: 1 }), signer);
  assert.equal(frames[1].toString(), "");
  assert.deepEqual(decodeMessage(frames, signer).content, { a: 1 });
});

test("malformed frame sequences name what is wrong", () => {
  const signer = new MessageSigner("hmac-sha256", "");
  assert.throws(() => decodeMessage([Buffer.from("x")], signer), /no <IDS\|MSG> delimiter/);
  assert.throws(() => decodeMessage([DELIMITER, Buffer.from("")], signer), /1 frames after <IDS\|MSG>; expected at least 5/);
  const notJson = [DELIMITER, Buffer.from(""), Buffer.from("{"), Buffer.from("{}"), Buffer.from("{}"), Buffer.from("{}")];
  assert.throws(() => decodeMessage(notJson, signer), /header is not JSON/);
  const noType = [DELIMITER, Buffer.from(""), Buffer.from("{}"), Buffer.from("{}"), Buffer.from("{}"), Buffer.from("[]")];
  assert.throws(() => decodeMessage(noType, signer), WireError);
});

test("an unknown signature scheme is refused by name", () => {
  assert.throws(() => new MessageSigner("rsa-sha256", "k"), /signature_scheme "rsa-sha256" is not supported/);
});

test("connection info: every port is checked and named", () => {
  const good = { transport: "tcp", ip: "127.0.0.1", shell_port: 1, iopub_port: 2, stdin_port: 3, control_port: 4, hb_port: 5, key: "k", signature_scheme: "hmac-sha256" };
  const info = parseConnectionInfo(good, "test");
  assert.equal(endpoint(info, "iopub"), "tcp://127.0.0.1:2");
  assert.equal(endpoint({ ...info, transport: "ipc", ip: "/tmp/k" }, "hb"), "ipc:///tmp/k-5");
  assert.throws(() => parseConnectionInfo({ ...good, hb_port: "5" }, "test"), (error: Error) => error instanceof ConnectionFileError && /hb_port must be an integer/.test(error.message));
  assert.throws(() => parseConnectionInfo({ ...good, transport: "udp" }, "test"), /transport must be "tcp" or "ipc"/);
  assert.throws(() => parseConnectionInfo([], "test"), /must hold a JSON object/);
});

test("history globs match whole inputs like IPython's", () => {
  assert.ok(globToRegExp("6*7").test("6 * 7"));
  assert.ok(!globToRegExp("6*7").test("16 * 7"));
  assert.ok(globToRegExp("a?c").test("abc"));
  assert.ok(globToRegExp("(x)").test("(x)"));
});

test("history answers tail, range and search (unique, n)", () => {
  const history = new HistoryStore();
  ["a = 1", "6 * 7", "b", "6 * 7"].forEach((input, index) => history.record(index + 1, input));
  history.recordOutput(2, "42");
  assert.deepEqual(history.query({ hist_access_type: "tail", n: 2 }), [[1, 3, "b"], [1, 4, "6 * 7"]]);
  assert.deepEqual(history.query({ hist_access_type: "range", session: 1, start: 2, stop: 3, output: true }), [[1, 2, ["6 * 7", "42"]]]);
  assert.equal(history.query({ hist_access_type: "search", pattern: "6*" }).length, 2);
  assert.deepEqual(history.query({ hist_access_type: "search", pattern: "6*", unique: true }), [[1, 4, "6 * 7"]]);
  assert.deepEqual(history.query({ hist_access_type: "search", pattern: "*", n: 1 }), [[1, 4, "6 * 7"]]);
  assert.throws(() => history.query({ hist_access_type: "everything" }), /hist_access_type must be/);
});
