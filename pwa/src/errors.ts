// errors.ts — reads the stable `reason` (google.rpc.ErrorInfo, domain "kitsulan") off a failed call.
// ErrorInfo is Google's message, not ours: its one field we need (reason = 1) is read directly.
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ErrorReason } from "./gen/kitsulan/v1/errors_pb";

/**
 * A reason the server sends: the name of an ErrorReason value (proto/kitsulan/v1/errors.proto,
 * generated without its ERROR_REASON_ prefix), e.g. "USERNAME_INVALID".
 */
export type Reason = Exclude<keyof typeof ErrorReason, "UNSPECIFIED">;

const ERROR_INFO = "google.rpc.ErrorInfo";

function readReason(bytes: Uint8Array): string | undefined {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [field, wire] = reader.tag();
    if (field === 1 && wire === WireType.LengthDelimited) return reader.string();
    reader.skip(wire);
  }
  return undefined;
}

/** The server's reason code for a failed call, e.g. "TOTP_REQUIRED"; "UNAVAILABLE" when unreachable. */
export function reasonOf(err: unknown): string {
  const e = ConnectError.from(err);
  for (const detail of e.details) {
    if ("type" in detail && detail.type === ERROR_INFO && detail.value instanceof Uint8Array) {
      try {
        const reason = readReason(detail.value);
        if (reason) return reason;
      } catch {
        // A malformed detail: fall back to the status code.
      }
    }
  }
  return e.code === Code.Unavailable || e.code === Code.Unknown ? "UNAVAILABLE" : Code[e.code].toUpperCase();
}
