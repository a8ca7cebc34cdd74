// outbox.testkit.ts — what the outbox's unit tests (and those of the stores that use it) share:
// an in-memory OutboxStorage that copies records the way IndexedDB does (so a "reload" reads
// only what was written), server refusals with a reason, and an Outbox over fakes with a
// simulated clock.
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { vi } from "vitest";
import { contentOf, EDIT_FOR_ANOTHER_MESSAGE, readContent, type Content } from "../crypto/content";
import { ContentSchema } from "../gen/kitsulan/v1/content_pb";
import { decodeValue, encodeValue } from "../storage/sealed";
import type { ConversationClient } from "./conversations";
import { Outbox, type OutboxRecord, type OutboxStorage, type OutboxTransfer } from "./outbox";
import { BOB, ME, TestState, conversation, fakeClient, state } from "./testkit";

/** An OutboxStorage in memory; records pass through the sealed store's encoding. */
export function memoryStorage() {
  const records = new Map<string, Uint8Array>();
  const blobs = new Map<string, Blob>();
  const puts: string[] = [];
  const storage: OutboxStorage & { records: Map<string, Uint8Array>; blobs: Map<string, Blob>; puts: string[] } = {
    records,
    blobs,
    puts,
    load: () =>
      Promise.resolve(
        [...records.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, v]) => decodeValue<OutboxRecord>(v)),
      ),
    put: (r) => {
      puts.push(r.key);
      records.set(r.key, encodeValue(r));
      return Promise.resolve();
    },
    remove: (key) => {
      records.delete(key);
      return Promise.resolve();
    },
    putBlob: (key, blob) => {
      blobs.set(key, blob);
      return Promise.resolve(true);
    },
    getBlob: (key) => Promise.resolve(blobs.get(key)),
    removeBlob: (key) => {
      blobs.delete(key);
      return Promise.resolve();
    },
  };
  return storage;
}

/** A refusal from the server with `reason` (google.rpc.ErrorInfo), or a network failure. */
export function refusal(reason: string, code = Code.FailedPrecondition): ConnectError {
  const err = new ConnectError(reason, code);
  const bytes = new TextEncoder().encode(reason);
  err.details.push({ type: "google.rpc.ErrorInfo", value: new Uint8Array([0x0a, bytes.length, ...bytes]) });
  return err;
}

export function offline(): ConnectError {
  return new ConnectError("fetch failed", Code.Unavailable);
}

export interface OutboxSetup {
  client?: Partial<ConversationClient>;
  storage?: ReturnType<typeof memoryStorage>;
  /** "instant": waits pass at once (the clock moves); "blocked": waits last until a kick. */
  waits?: "instant" | "blocked";
  clock?: { now: number };
  st?: TestState;
  transfer?: OutboxTransfer;
}

/** What a plaintext the outbox encrypted says (its typed Content, read back). */
export function plainContent(plaintext: Uint8Array | undefined, messageId = ""): Content {
  return contentOf(plaintext ?? new Uint8Array(), messageId, "");
}

/** A short form of a plaintext: the text of a text or an edit, `file:<name>` of a file. */
function summary(plaintext: Uint8Array): string {
  const c = readContent(plaintext, "");
  if ("undecryptable" in c) return c.undecryptable === EDIT_FOR_ANOTHER_MESSAGE ? editText(plaintext) : `?${c.undecryptable}`;
  return c.ok.kind === "text" ? c.ok.text : c.ok.kind === "attachment" ? `file:${c.ok.file.name}` : c.ok.kind;
}

/** The text of an edit, whichever message it names. */
function editText(plaintext: Uint8Array): string {
  const c = fromBinary(ContentSchema, plaintext.subarray(2));
  return c.body.case === "edit" ? (c.body.value.text?.body ?? "") : "";
}

/** An Outbox over fakes: the engine "encrypts" to `summary#n` (n counts encryptions; summary:
 * the text, or `file:<name>`). */
export function outboxSetup(opts: OutboxSetup = {}) {
  const st = opts.st ?? new TestState(state({ conversations: [conversation({ members: [ME, BOB] })] }));
  const fake = fakeClient<ConversationClient>((opts.client ?? {}) as never);
  const storage = opts.storage ?? memoryStorage();
  const clock = opts.clock ?? { now: 1_700_000_000_000 };
  const waits: number[] = [];
  let n = 0;
  const engine = {
    encrypt: vi.fn((_c: string, _members: string[], plaintext: Uint8Array) =>
      Promise.resolve({
        messageId: "ignored",
        ciphertext: new TextEncoder().encode(`${summary(plaintext)}#${++n}`),
        sessionId: new Uint8Array([9]),
        unreadableBy: [] as string[],
      }),
    ),
  };
  const transfer = {
    upload: vi.fn((_c: string, _blob: Blob, _ttl: number, onProgress?: (d: number, t: number) => void) => {
      onProgress?.(1, 1);
      return Promise.resolve(`att-${transfer.upload.mock.calls.length}`);
    }),
    remove: vi.fn((_id: string) => Promise.resolve()),
  };
  const keyChanged = vi.fn((err: unknown) => err instanceof Error && err.name === "AccountKeyChanged");
  const outbox = new Outbox(st, {
    client: fake.client,
    engine,
    conversations: { get: (id: string) => st.s.conversations.find((c) => c.id === id) },
    storage,
    transfer: opts.transfer ?? transfer,
    keyChanged,
    now: () => clock.now,
    sleep: (ms, wake) => {
      waits.push(ms);
      clock.now += ms;
      if (opts.waits === "blocked") return new Promise((resolve) => wake.addEventListener("abort", () => resolve(), { once: true }));
      return Promise.resolve();
    },
  });
  return { outbox, st, calls: fake.calls, storage, clock, waits, engine, transfer, keyChanged };
}
