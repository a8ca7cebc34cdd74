import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { describe, expect, it, vi } from "vitest";
import { parseFileRef } from "../attachments/content";
import type { PreparedImage } from "../attachments/image";
import type { Progress } from "../attachments/transfer";
import { AttachmentChange, AttachmentEventSchema, type AttachmentService } from "../gen/kitsulan/v1/attachment_pb";
import { apply, applyUploads, DEFAULT_TTL_CHOICES, Files, type Upload } from "./files";
import { BOB, CAROL, CONV, TestState, fakeClient, state } from "./testkit";

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

function setup(opts: { prepared?: PreparedImage; failUpload?: number; failSend?: boolean } = {}) {
  const st = new TestState();
  const uploads: Array<{ size: number; ttl: number; progress: boolean }> = [];
  const transfer = {
    prepareImage: vi.fn((_f: File, _keep: boolean) =>
      opts.prepared ? Promise.resolve(opts.prepared) : Promise.reject(new Error("not an image")),
    ),
    encrypt: vi.fn((body: Blob) => Promise.resolve({ ciphertext: new Blob([new Uint8Array(body.size + 16)]), secrets: `k${body.size}` })),
    upload: vi.fn((_c: string, ciphertext: Blob, ttl: number, onProgress?: Progress, signal?: AbortSignal) => {
      if (signal?.aborted) return Promise.reject(new Error("aborted"));
      uploads.push({ size: ciphertext.size, ttl, progress: onProgress !== undefined });
      if (uploads.length === opts.failUpload) return Promise.reject(new Error("upload failed"));
      onProgress?.(ciphertext.size / 2, ciphertext.size);
      onProgress?.(ciphertext.size, ciphertext.size);
      return Promise.resolve(`att-${uploads.length}`);
    }),
    remove: vi.fn((_id: string) => Promise.resolve()),
    cancelled: () => new Error("cancelled"),
  };
  const send = vi.fn((_c: string, _text: string, _ids: string[]) =>
    opts.failSend ? Promise.reject(new Error("send failed")) : Promise.resolve(),
  );
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
  const files = new Files(st, { attachments: fake.client, transfer, send, profiles });
  return { files, st, transfer, send, uploads, profiles };
}

const options = { ttlSeconds: 3600, keepOriginal: false };

describe("Files", () => {
  it("sends a file: encrypted, uploaded with progress, then the message naming it", async () => {
    const { files, send, uploads, transfer } = setup();
    const progress: Array<[number, number]> = [];
    const file = new File([new Uint8Array(100)], "notes.txt", { type: "text/plain" });
    await files.sendFile(CONV, file, options, (done, total) => progress.push([done, total]));
    expect(transfer.prepareImage).not.toHaveBeenCalled();
    expect(uploads).toEqual([{ size: 116, ttl: 3600, progress: true }]);
    expect(progress).toEqual([
      [58, 116],
      [116, 116],
    ]);
    const [conversationId, text, ids] = send.mock.calls[0] ?? [];
    expect(conversationId).toBe(CONV);
    expect(ids).toEqual(["att-1"]);
    expect(parseFileRef(text ?? "")).toMatchObject({ attachment: "att-1", secrets: "k100", name: "notes.txt", type: "text/plain", size: 100 });
  });

  it("sends an image re-encoded, with its thumbnail uploaded first", async () => {
    const prepared: PreparedImage = {
      body: new Blob([new Uint8Array(80)], { type: "image/jpeg" }),
      type: "image/jpeg",
      width: 640,
      height: 480,
      thumbnail: { blob: new Blob([new Uint8Array(10)]), width: 64, height: 48 },
    };
    const { files, send, uploads } = setup({ prepared });
    await files.sendFile(CONV, new File([new Uint8Array(200)], "photo.png", { type: "image/png" }), options);
    expect(uploads.map((u) => u.size)).toEqual([26, 96]);
    const ref = parseFileRef(send.mock.calls[0]?.[1] ?? "");
    expect(ref).toMatchObject({ attachment: "att-2", type: "image/jpeg", width: 640, height: 480, size: 80 });
    expect(ref?.thumbnail).toMatchObject({ attachment: "att-1", type: "image/jpeg", width: 64, height: 48 });
    expect(send.mock.calls[0]?.[2]).toEqual(["att-2", "att-1"]);
  });

  it("an image that cannot be decoded goes as a file", async () => {
    const { files, send } = setup();
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    await files.sendFile(CONV, new File([new Uint8Array(5)], "broken.png", { type: "image/png" }), options);
    expect(warn).toHaveBeenCalledOnce();
    warn.mockRestore();
    expect(parseFileRef(send.mock.calls[0]?.[1] ?? "")).toMatchObject({ type: "image/png", size: 5 });
  });

  it("cancelled or failed before the message went: what was uploaded is deleted", async () => {
    const prepared: PreparedImage = {
      body: new Blob([new Uint8Array(8)]),
      type: "image/jpeg",
      width: 1,
      height: 1,
      thumbnail: { blob: new Blob([new Uint8Array(1)]), width: 1, height: 1 },
    };
    const failing = setup({ prepared, failUpload: 2 });
    await expect(failing.files.sendFile(CONV, new File([], "a.png", { type: "image/png" }), options)).rejects.toThrow("upload failed");
    expect(failing.transfer.remove.mock.calls).toEqual([["att-1"]]);
    expect(failing.send).not.toHaveBeenCalled();

    const cancelled = setup({ prepared });
    const controller = new AbortController();
    cancelled.transfer.encrypt.mockImplementation((body: Blob) => {
      if (body.size === 8) controller.abort();
      return Promise.resolve({ ciphertext: body, secrets: "k" });
    });
    await expect(
      cancelled.files.sendFile(CONV, new File([], "a.png", { type: "image/png" }), options, undefined, controller.signal),
    ).rejects.toThrow("cancelled");
    expect(cancelled.transfer.remove.mock.calls).toEqual([["att-1"]]);
  });

  it("a failed send keeps the uploads for its retry", async () => {
    const { files, transfer } = setup({ failSend: true });
    await expect(files.sendFile(CONV, new File([new Uint8Array(3)], "a.txt"), options)).rejects.toThrow("send failed");
    expect(transfer.remove).not.toHaveBeenCalled();
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
