import { describe, expect, it } from "vitest";
import { applyChat, initialState, type ChatState } from "./store";

const ME = "0193a0b2-0000-7000-8000-000000000001";
const ANN = "0193a0b2-0000-7000-8000-000000000002";
const BEN = "0193a0b2-0000-7000-8000-000000000003";

function start(): ChatState {
  return initialState({ accountId: ME, deviceId: "d" });
}

describe("presence", () => {
  it("takes the list from Ready (without ourselves) and follows changes", () => {
    let s = applyChat(start(), { type: "presenceReady", accountIds: [ANN, ME] });
    expect(Object.keys(s.online)).toEqual([ANN]);
    s = applyChat(s, { type: "presence", accountId: BEN, online: true });
    expect(Object.keys(s.online).sort()).toEqual([ANN, BEN].sort());
    s = applyChat(s, { type: "presence", accountId: ANN, online: false });
    expect(Object.keys(s.online)).toEqual([BEN]);
  });

  it("leaves the state as it is when nothing changes", () => {
    const s = applyChat(start(), { type: "presenceReady", accountIds: [ANN] });
    expect(applyChat(s, { type: "presence", accountId: ANN, online: true })).toBe(s);
    expect(applyChat(s, { type: "presence", accountId: BEN, online: false })).toBe(s);
    expect(applyChat(s, { type: "presence", accountId: ME, online: true })).toBe(s);
  });

  it("forgets everyone when the connection goes, and a new Ready replaces the list", () => {
    let s = applyChat(start(), { type: "presenceReady", accountIds: [ANN, BEN] });
    s = applyChat(s, { type: "status", status: "offline" });
    expect(s.online).toEqual({});
    s = applyChat(s, { type: "presenceReady", accountIds: [BEN] });
    expect(Object.keys(s.online)).toEqual([BEN]);
    expect(applyChat(s, { type: "status", status: "online" }).online).toEqual(s.online);
  });
});
