// lazy.ts — the attachment code (encryption, upload, download: transfer.ts; image resizing:
// image.ts) as chunks of their own, loaded when a file is first sent or opened. The same
// functions, each importing its module on the first call; the errors come from errors.ts, so
// `instanceof` works before anything is loaded.
import type * as Image from "./image";
import type * as Transfer from "./transfer";

export { Cancelled, Expired, HashMismatch } from "./errors";

const transfer = () => import("./transfer");

export const prepareImage: typeof Image.prepareImage = async (...a) => (await import("./image")).prepareImage(...a);
export const encryptBlob: typeof Transfer.encryptBlob = async (...a) => (await transfer()).encryptBlob(...a);
export const uploadCiphertext: typeof Transfer.uploadCiphertext = async (...a) =>
  (await transfer()).uploadCiphertext(...a);
export const deleteAttachment: typeof Transfer.deleteAttachment = async (...a) =>
  (await transfer()).deleteAttachment(...a);
export const downloadDecrypt: typeof Transfer.downloadDecrypt = async (...a) => (await transfer()).downloadDecrypt(...a);
export const reportDownloaded: typeof Transfer.reportDownloaded = async (...a) =>
  (await transfer()).reportDownloaded(...a);
