import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { MessageSchema } from "../gen/kitsulan/v1/conversation_pb";
import { decodeValue, encodeValue } from "./sealed";

describe("sealed records' encoding", () => {
  it("keeps bigints, byte arrays and protobuf messages", () => {
    const message = create(MessageSchema, {
      id: "m1",
      seq: 42n,
      ciphertext: new Uint8Array([0, 1, 255]),
      sentAtMs: 1_700_000_000_000n,
    });
    const back = decodeValue<{ m: typeof message; n: bigint; list: Uint8Array[] }>(
      encodeValue({ m: message, n: 2n ** 70n, list: [new Uint8Array(70_000).fill(7)] }),
    );
    expect(back.m).toEqual(message);
    expect(back.n).toBe(2n ** 70n);
    expect(back.list[0]).toEqual(new Uint8Array(70_000).fill(7));
  });

  it("leaves ordinary objects that look a little like the markers alone", () => {
    const value = { $n: "1", other: true, $b: 3 };
    expect(decodeValue(encodeValue(value))).toEqual(value);
  });
});
