import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { describe, expect, it, vi } from "vitest";
import type { FileRef } from "../attachments/content";
import type { PreparedImage } from "../attachments/image";
import type { Progress } from "../attachments/transfer";
import { AttachmentChange, AttachmentEventSchema, type AttachmentService } from "../gen/kitsulan/v1/attachment_pb";
import { apply, applyUploads, DEFAULT_TTL_CHOICES, Files, type Upload } from "./files";
import { outboxSetup, plainContent, refusal } from "./outbox.testkit";
import { BOB, CAROL, CONV, ME, TestState, conversation, fakeClient, message, state } from "./testkit";

/** The file a plaintext the outbox encrypted names (a typed FileContent), or null. */
function fileOf(plaintext: Uint8Array | undefined): FileRef | null {
  const c = plainContent(plaintext);
  return c.kind === "attachment" ? c.file : null;
}

describe("files.apply", () => {
  it("offers the server's TTLs, the defaults when it names none", () => {
    const s = state();
    expect(s.ttlChoices).toEqual(DEFAULT_TTL_CHOICES);
    expect(apply(s, { type: "ttlChoices", seconds: [60] }).ttlChoices).toEqual([60]);
    expect(apply(s, { type: "ttlChoices", seconds: [] })).toBe(s);
  });

  it("keeps the first download of each account, oldest first, beside what else it knows", () => {
    let s = apply(state(), { type: "fileExpired", attachmentId: "a" });
    s = apply(s, { type: "downloads", attachmentId: "a", downloads: [{ accountId: BOB, atMs: 20 }] });
    s = apply(s, {
      type: "downloads",
      attachmentId: "a",
      downloads: [
        { accountId: CAROL, atMs: 10 },
        { accountId: BOB, atMs: 30 },
      ],
    });
    expect(s.files.a).toEqual({
      expired: true,
      downloads: [
        { accountId: CAROL, atMs: 10 },
        { accountId: BOB, atMs: 20 },
      ],
    });
  });

  it("takes the gateway's attachment events: expired, downloaded", () => {
    const event = (change: AttachmentChange, accountId = "") =>
      create(AttachmentEventSchema, { attachmentId: "a", change, accountId, atMs: 5n });
    expect(apply(state(), { type: "attachment", event: event(AttachmentChange.EXPIRED) }).files.a).toEqual({ expired: true });
    expect(apply(state(), { type: "attachment", event: event(AttachmentChange.DOWNLOADED, BOB) }).files.a).toEqual({
      downloads: [{ accountId: BOB, atMs: 5 }],
    });
    const s = state();
    expect(apply(s, { type: "attachment", event: event(AttachmentChange.DOWNLOADED) })).toBe(s);
  });
});

describe("applyUploads", () => {
  const upload = (key: number): Upload => ({ key, name: `f${key}`, done: 0, total: 100, controller: new AbortController() });

  it("follows each upload's progress until it is gone or failed", () => {
    let list = applyUploads([], { type: "started", upload: upload(1) });
    list = applyUploads(list, { type: "started", upload: upload(2) });
    list = applyUploads(list, { type: "progress", key: 1, done: 40, total: 120 });
    expect(list.map((u) => [u.key, u.done, u.total])).toEqual([
      [1, 40, 120],
      [2, 0, 100],
    ]);
    list = applyUploads(list, { type: "failed", key: 2, error: "failed" });
    expect(list[1]?.error).toBe("failed");
    list = applyUploads(list, { type: "gone", key: 1 });
    expect(list.map((u) => u.key)).toEqual([2]);
  });
});

function setup(opts: { prepared?: PreparedImage; failUpload?: number; failSend?: string; waits?: "blocked" } = {}) {
  const st = new TestState(state({ conversations: [conversation({})] }));
  const uploads: Array<{ size: number; ttl: number; progress: boolean }> = [];
  const transfer = {
    prepareImage: vi.fn((_f: File, _keep: boolean) =>
      opts.prepared ? Promise.resolve(opts.prepared) : Promise.reject(new Error("not an image")),
    ),
    encrypt: vi.fn((body: Blob) => Promise.resolve({ ciphertext: new Blob([new Uint8Array(body.size + 16)]), secrets: `k${body.size}` })),
    upload: vi.fn((_c: string, ciphertext: Blob, ttl: number, onProgress?: Progress, signal?: AbortSignal) => {
      if (signal?.aborted) return Promise.reject(new Error("aborted"));
      uploads.push({ size: ciphertext.size, ttl, progress: onProgress !== undefined });
      if (uploads.length === opts.failUpload) return Promise.reject(refusal("QUOTA_EXCEEDED"));
      onProgress?.(ciphertext.size / 2, ciphertext.size);
      onProgress?.(ciphertext.size, ciphertext.size);
      return Promise.resolve(`att-${uploads.length}`);
    }),
    remove: vi.fn((_id: string) => Promise.resolve()),
    download: vi.fn((id: string, _secrets: string, type: string, onProgress?: Progress) => {
      onProgress?.(1, 2);
      return Promise.resolve(new Blob([new Uint8Array(id === "orig-thumb" ? 12 : 50)], { type }));
    }),
    cancelled: () => new Error("cancelled"),
  };
  const box = outboxSetup({
    st,
    transfer,
    ...(opts.waits ? { waits: opts.waits } : {}),
    client: {
      sendMessage: ((req: { messageId: string }) => {
        if (opts.failSend) throw refusal(opts.failSend);
        return { message: message({ id: req.messageId, seq: 1n, senderAccountId: ME }) };
      }) as never,
    },
  });
  /** The plaintexts of the messages sent, and the attachment ids each named. */
  const sent = () =>
    box.calls
      .filter(([m]) => m === "sendMessage")
      .map(([, req], i) => ({ text: box.engine.encrypt.mock.calls[i]?.[2], ids: (req as { attachmentIds: string[] }).attachmentIds }));
  const profiles = { load: vi.fn((_ids: string[]) => Promise.resolve()) };
  const fake = fakeClient<Client<typeof AttachmentService>>({
    listDownloads: (() => {
      const err = new ConnectError("gone", Code.NotFound);
      // google.rpc.ErrorInfo { reason: "ATTACHMENT_EXPIRED" }
      const reason = new TextEncoder().encode("ATTACHMENT_EXPIRED");
      err.details.push({ type: "google.rpc.ErrorInfo", value: new Uint8Array([0x0a, reason.length, ...reason]) });
      throw err;
    }) as never,
  });
  const files = new Files(st, { attachments: fake.client, transfer, outbox: box.outbox, profiles });
  return { files, st, transfer, sent, uploads, profiles, box };
}

const options = { ttlSeconds: 3600, keepOriginal: false };

describe("Files", () => {
  it("sends a file: encrypted, kept in the outbox, uploaded with progress, then the message naming it", async () => {
    const { files, sent, uploads, transfer, box } = setup();
    const progress: Array<[number, number]> = [];
    const file = new File([new Uint8Array(100)], "notes.txt", { type: "text/plain" });
    await files.sendFile(CONV, file, options, (done, total) => progress.push([done, total]));
    expect(transfer.prepareImage).not.toHaveBeenCalled();
    expect(uploads).toEqual([{ size: 116, ttl: 3600, progress: true }]);
    expect(progress).toEqual([
      [58, 116],
      [116, 116],
    ]);
    const [only] = sent();
    expect(only?.ids).toEqual(["att-1"]);
    expect(fileOf(only?.text)).toMatchObject({ attachment: "att-1", secrets: "k100", name: "notes.txt", type: "text/plain", size: 100 });
    // Sent: the record and its kept ciphertext are gone.
    expect(box.storage.records.size).toBe(0);
    expect(box.storage.blobs.size).toBe(0);
  });

  it("sends an image re-encoded, with its thumbnail uploaded first", async () => {
    const prepared: PreparedImage = {
      body: new Blob([new Uint8Array(80)], { type: "image/jpeg" }),
      type: "image/jpeg",
      width: 640,
      height: 480,
      thumbnail: { blob: new Blob([new Uint8Array(10)]), width: 64, height: 48 },
    };
    const { files, sent, uploads } = setup({ prepared });
    await files.sendFile(CONV, new File([new Uint8Array(200)], "photo.png", { type: "image/png" }), options);
    expect(uploads.map((u) => u.size)).toEqual([26, 96]);
    const ref = fileOf(sent()[0]?.text);
    expect(ref).toMatchObject({ attachment: "att-2", type: "image/jpeg", width: 640, height: 480, size: 80 });
    expect(ref?.thumbnail).toMatchObject({ attachment: "att-1", type: "image/jpeg", width: 64, height: 48 });
    expect(sent()[0]?.ids).toEqual(["att-2", "att-1"]);
  });

  it("an image that cannot be decoded goes as a file", async () => {
    const { files, sent } = setup();
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    await files.sendFile(CONV, new File([new Uint8Array(5)], "broken.png", { type: "image/png" }), options);
    expect(warn).toHaveBeenCalledOnce();
    warn.mockRestore();
    expect(fileOf(sent()[0]?.text)).toMatchObject({ type: "image/png", size: 5 });
  });

  it("an upload refused for good: Not sent; Delete deletes what was uploaded", async () => {
    const prepared: PreparedImage = {
      body: new Blob([new Uint8Array(8)]),
      type: "image/jpeg",
      width: 1,
      height: 1,
      thumbnail: { blob: new Blob([new Uint8Array(1)]), width: 1, height: 1 },
    };
    const { files, transfer, sent, box, st } = setup({ prepared, failUpload: 2 });
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    await files.sendFile(CONV, new File([], "a.png", { type: "image/png" }), options);
    warn.mockRestore();
    expect(sent()).toEqual([]);
    const record = st.s.outbox[CONV]?.[0];
    expect(record?.failed).toBe("QUOTA_EXCEEDED");
    await box.outbox.discard(record?.key ?? "");
    expect(transfer.remove.mock.calls).toEqual([["att-1"]]);
    expect(box.storage.records.size).toBe(0);
    expect(box.storage.blobs.size).toBe(0);
  });

  it("cancelled before it was handed to the outbox: nothing is kept or uploaded", async () => {
    const { files, transfer, box } = setup();
    const controller = new AbortController();
    transfer.encrypt.mockImplementation((body: Blob) => {
      controller.abort();
      return Promise.resolve({ ciphertext: body, secrets: "k" });
    });
    await expect(files.sendFile(CONV, new File([], "a.txt"), options, undefined, controller.signal)).rejects.toThrow("cancelled");
    expect(transfer.upload).not.toHaveBeenCalled();
    expect(box.storage.records.size).toBe(0);
  });

  it("cancelled during the upload: the upload is stopped, the record and its bubble go", async () => {
    const { files, transfer, box, st } = setup();
    const controller = new AbortController();
    let aborted = false;
    transfer.upload.mockImplementation((_c: string, _b: Blob, _t: number, _p?: Progress, signal?: AbortSignal) => {
      controller.abort(); // the person presses Cancel while it uploads
      return new Promise((_resolve, reject) =>
        signal?.addEventListener("abort", () => {
          aborted = true;
          reject(new Error("cancelled"));
        }),
      );
    });
    await files.sendFile(CONV, new File([new Uint8Array(3)], "a.txt"), options, undefined, controller.signal);
    expect(aborted).toBe(true);
    expect(box.storage.records.size).toBe(0);
    expect(box.storage.blobs.size).toBe(0);
    expect(st.s.outbox[CONV]).toBeUndefined();
  });

  it("an upload cut by a reload restarts from the kept ciphertext, then the message goes", async () => {
    const first = setup({ waits: "blocked" });
    first.transfer.upload.mockImplementation(() => Promise.reject(new Error("upload: network error")));
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    void first.files.sendFile(CONV, new File([new Uint8Array(4)], "a.txt"), options);
    await vi.waitFor(() => expect(first.box.storage.records.size).toBe(1));
    await vi.waitFor(() => expect(first.box.waits.length).toBeGreaterThan(0));
    first.box.outbox.stop();
    warn.mockRestore();
    const blobs = [...first.box.storage.blobs.values()];
    expect(blobs.map((b) => b.size)).toEqual([20]);

    const upload = vi.fn((_c: string, blob: Blob) => Promise.resolve(`att-${blob.size}`));
    const next = outboxSetup({
      storage: first.box.storage,
      transfer: { upload, remove: vi.fn(() => Promise.resolve()) },
      client: { sendMessage: ((req: { messageId: string }) => ({ message: message({ id: req.messageId, seq: 1n, senderAccountId: ME }) })) as never },
    });
    await next.outbox.load();
    await vi.waitFor(() => expect(next.storage.records.size).toBe(0));
    expect(upload).toHaveBeenCalledOnce();
    expect(fileOf(next.engine.encrypt.mock.calls[0]?.[2])).toMatchObject({ attachment: "att-20", name: "a.txt", size: 4 });
    expect(next.storage.blobs.size).toBe(0);
  });

  it("forwards a file by uploading it again under a new key, marked forwarded, thumbnail and all", async () => {
    const { files, sent, uploads, transfer } = setup();
    const original: FileRef = {
      attachment: "orig",
      secrets: "old-key",
      name: "photo.jpg",
      type: "image/jpeg",
      size: 50,
      width: 640,
      height: 480,
      thumbnail: { attachment: "orig-thumb", secrets: "old-thumb-key", type: "image/jpeg", width: 64, height: 48 },
    };
    const progress: Array<[number, number]> = [];
    await files.forwardFile(CONV, original, { fromAccountId: BOB, sentAtMs: 1234 }, (done, total) => progress.push([done, total]));
    // Downloaded and checked with the original's keys (progress: the body's download)...
    expect(transfer.download.mock.calls.map(([id, secrets]) => [id, secrets])).toEqual([
      ["orig", "old-key"],
      ["orig-thumb", "old-thumb-key"],
    ]);
    expect(progress).toEqual([[1, 2]]);
    expect(transfer.prepareImage).not.toHaveBeenCalled(); // not re-encoded: forwarded as it was
    // ...then sent as a new file: fresh keys (the fake's "k<size>", as base64), new uploads (no
    // TTL), the original's keys nowhere.
    await vi.waitFor(() => expect(sent()).toHaveLength(1));
    expect(uploads.map((u) => [u.size, u.ttl])).toEqual([
      [28, 0],
      [66, 0],
    ]);
    const [only] = sent();
    expect(only?.ids).toEqual(["att-2", "att-1"]);
    const c = plainContent(only?.text);
    expect(c).toMatchObject({ kind: "attachment", forwarded: { fromAccountId: BOB, sentAtMs: 1234 } });
    expect(fileOf(only?.text)).toMatchObject({ attachment: "att-2", secrets: expect.stringMatching(/^k50/), name: "photo.jpg", type: "image/jpeg", size: 50, width: 640, height: 480 });
    expect(fileOf(only?.text)?.thumbnail).toMatchObject({ attachment: "att-1", secrets: expect.stringMatching(/^k1/), width: 64, height: 48 });
    expect(new TextDecoder().decode(only?.text)).not.toMatch(/old-(thumb-)?key/);
  });

  it("a file that cannot be downloaded is not forwarded: nothing is kept or uploaded", async () => {
    const { files, transfer, box } = setup();
    transfer.download.mockImplementation(() => Promise.reject(new Error("gone")));
    const file: FileRef = { attachment: "orig", secrets: "k", name: "a.txt", type: "text/plain", size: 3 };
    await expect(files.forwardFile(CONV, file, { fromAccountId: BOB, sentAtMs: 1 })).rejects.toThrow("gone");
    expect(transfer.upload).not.toHaveBeenCalled();
    expect(box.storage.records.size).toBe(0);
  });

  it("an attachment the server says expired is marked so when its downloads are asked for", async () => {
    const { files, st } = setup();
    await files.loadDownloads("att-9");
    expect(st.s.files["att-9"]).toEqual({ expired: true });
  });

  it("a download of ours reported by the gateway fetches who it was", () => {
    const { files, st, profiles } = setup();
    files.onEvent(create(AttachmentEventSchema, { attachmentId: "a", change: AttachmentChange.DOWNLOADED, accountId: BOB, atMs: 9n }));
    expect(profiles.load).toHaveBeenCalledWith([BOB]);
    expect(st.s.files.a?.downloads).toEqual([{ accountId: BOB, atMs: 9 }]);
  });
});
