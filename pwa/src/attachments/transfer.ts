// transfer.ts — encrypted attachments over the wire, through the crypto crate's WASM build
// only (AttachmentEncryptor / AttachmentDecryptor: AES-256-CTR, SHA-256 of the ciphertext).
// Files are read with Blob.stream() and encrypted chunk by chunk into a Blob of ciphertext
// chunks, which XMLHttpRequest PUTs (with upload progress; the Lite server speaks HTTP/1.1, where
// a streamed fetch body is not available). Downloads are decrypted chunk by chunk as they arrive;
// nothing is handed out before the hash check (finish) passed.
import { AttachmentDecryptor, AttachmentEncryptor, AttachmentSecrets } from "kitsulan-crypto";
import { attachmentClient } from "../api";
import { reasonOf } from "../errors";
import type { BlobRequest } from "../gen/kitsulan/v1/attachment_pb";

import { Cancelled, Expired, HashMismatch } from "./errors";
import { fromBase64, toBase64 } from "../lib/base64";

export { Cancelled, Expired, HashMismatch } from "./errors";

export type Progress = (done: number, total: number) => void;



/** Encrypts `file` chunk by chunk; returns the ciphertext and the base64 secrets. */
export async function encryptBlob(file: Blob): Promise<{ ciphertext: Blob; secrets: string }> {
  const encryptor = new AttachmentEncryptor();
  const parts: Uint8Array<ArrayBuffer>[] = [];
  try {
    const reader = file.stream().getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(new Uint8Array(encryptor.update(value)));
    }
    const secrets = encryptor.finish();
    const encoded = toBase64(secrets.toBytes());
    secrets.free();
    return { ciphertext: new Blob(parts, { type: "application/octet-stream" }), secrets: encoded };
  } finally {
    encryptor.free();
  }
}

function absolute(request: BlobRequest): string {
  return request.url.startsWith("/") ? `${window.location.origin}${request.url}` : request.url;
}

/** Headers a browser sets itself (and refuses to be given). */
const FORBIDDEN = new Set(["host", "content-length"]);

function put(request: BlobRequest, body: Blob, onProgress: Progress | undefined, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(request.method || "PUT", absolute(request));
    for (const [name, value] of Object.entries(request.headers)) {
      if (!FORBIDDEN.has(name.toLowerCase())) xhr.setRequestHeader(name, value);
    }
    xhr.upload.onprogress = (e) => onProgress?.(e.loaded, e.lengthComputable ? e.total : body.size);
    xhr.onload = () => (xhr.status >= 200 && xhr.status < 300 ? resolve() : reject(new Error(`upload: HTTP ${xhr.status}`)));
    xhr.onerror = () => reject(new Error("upload: network error"));
    xhr.onabort = () => reject(new Cancelled());
    if (signal?.aborted) {
      reject(new Cancelled());
      return;
    }
    signal?.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(body);
  });
}

/**
 * Uploads encrypted bytes into a conversation: CreateUpload, PUT, CompleteUpload. On cancel
 * (signal) or failure the reserved attachment is deleted. Returns the attachment id.
 */
export async function uploadCiphertext(
  conversationId: string,
  ciphertext: Blob,
  ttlSeconds: number,
  onProgress?: Progress,
  signal?: AbortSignal,
): Promise<string> {
  if (signal?.aborted) throw new Cancelled();
  const created = await attachmentClient.createUpload({ conversationId, size: BigInt(ciphertext.size), ttlSeconds });
  const id = created.attachment?.id;
  if (!id || !created.upload) throw new Error("CreateUpload answered without an attachment");
  try {
    await put(created.upload, ciphertext, onProgress, signal);
    if (signal?.aborted) throw new Cancelled();
    await attachmentClient.completeUpload({ attachmentId: id });
    return id;
  } catch (err) {
    await deleteAttachment(id);
    throw err;
  }
}

/** Deletes one of our attachments (a cancelled upload); errors are ignored. */
export async function deleteAttachment(attachmentId: string): Promise<void> {
  await attachmentClient.deleteAttachment({ attachmentId }).catch(() => undefined);
}

/**
 * Downloads and decrypts an attachment chunk by chunk, checks its hash, and only then returns
 * the plaintext as a Blob of `type`. Throws Expired when the server says it is gone, and
 * HashMismatch (having dropped what was decrypted) when the ciphertext was changed.
 */
export async function downloadDecrypt(
  attachmentId: string,
  secretsBase64: string,
  type: string,
  onProgress?: Progress,
): Promise<Blob> {
  let request: BlobRequest | undefined;
  let size = 0;
  try {
    const res = await attachmentClient.getDownloadUrl({ attachmentId });
    request = res.download;
    size = Number(res.attachment?.size ?? 0n);
  } catch (err) {
    const reason = reasonOf(err);
    if (reason === "ATTACHMENT_EXPIRED" || reason === "ATTACHMENT_NOT_FOUND") throw new Expired();
    throw err;
  }
  if (!request) throw new Error("GetDownloadUrl answered without a URL");
  const response = await fetch(absolute(request), { method: request.method || "GET", cache: "no-store" });
  if (response.status === 404) throw new Expired();
  if (!response.ok || !response.body) throw new Error(`download: HTTP ${response.status}`);
  const secrets = AttachmentSecrets.fromBytes(fromBase64(secretsBase64));
  const decryptor = new AttachmentDecryptor(secrets);
  secrets.free();
  let parts: Uint8Array<ArrayBuffer>[] = [];
  let done = 0;
  try {
    const reader = response.body.getReader();
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      done += chunk.value.length;
      parts.push(new Uint8Array(decryptor.update(chunk.value)));
      onProgress?.(done, size || done);
    }
    try {
      decryptor.finish();
    } catch {
      parts = [];
      throw new HashMismatch();
    }
  } finally {
    decryptor.free();
  }
  return new Blob(parts, { type: type || "application/octet-stream" });
}

/** Tells the server (and so the sender) that we downloaded it and the hash matched. */
export async function reportDownloaded(attachmentId: string): Promise<void> {
  await attachmentClient.reportDownloaded({ attachmentId }).catch(() => undefined);
}
