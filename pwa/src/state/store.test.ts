import { describe, expect, it, vi } from "vitest";
import { applyChat, Store } from "./store";
import { BOB, CONV, ME, conversation, message, state, text } from "./testkit";

describe("applyChat", () => {
  it("lets every concern see an event: a message arriving changes its thread and its conversation", () => {
    const s = state({ conversations: [conversation({ lastSeq: 1n })] });
    const m = message({ id: "m2", seq: 2n, sentAtMs: 5n });
    const after = applyChat(s, { type: "messageArrived", message: m, content: text("hi"), known: false, fromOther: true, visible: false });
    expect(after.threads[CONV]?.items.map((i) => i.message.id)).toEqual(["m2"]);
    expect(after.conversations[0]).toMatchObject({ lastSeq: 2n, unreadCount: 1 });
    expect(after.previews[CONV]).toBe("hi");
    expect(after.receipts).toBe(s.receipts);
  });

  it("keeps the connection status and the verification marks", () => {
    let s = applyChat(state(), { type: "status", status: "online" });
    s = applyChat(s, { type: "verified", accountIds: [BOB] });
    s = applyChat(s, { type: "keyWarning", accountId: BOB });
    expect(s).toMatchObject({ status: "online", verified: { [BOB]: true }, keyWarning: BOB });
  });
});

describe("Store", () => {
  it("tells its listeners of each change, not of an event that changed nothing", () => {
    const store = new Store(state());
    const listener = vi.fn();
    const unsubscribe = store.subscribe(listener);
    store.dispatch({ type: "typing", typing: { conversationId: CONV, accountId: ME, typing: true } as never, me: ME, now: 0 });
    expect(listener).not.toHaveBeenCalled();
    const before = store.get();
    store.dispatch({ type: "opened", conversationId: CONV });
    expect(listener).toHaveBeenCalledOnce();
    expect(store.get()).not.toBe(before);
    expect(store.get().active).toBe(CONV);
    unsubscribe();
    store.dispatch({ type: "opened", conversationId: null });
    expect(listener).toHaveBeenCalledOnce();
  });
});
