// useCalls.ts — reads the call state (calls/calls.ts) in a component. The call code loads on
// first use (Chat.loadCalls); until then there is no call, and useLoadedCalls gives null.
import { useSyncExternalStore } from "react";
import type { Calls, CallsState } from "../../calls/calls";
import type { Chat } from "../../state/chat";

export function useCalls<T>(calls: Calls, select: (s: CallsState) => T): T {
  return useSyncExternalStore(calls.subscribe, () => select(calls.get()));
}

/** The calls once their code has loaded, else null (re-renders when it loads). */
export function useLoadedCalls(chat: Chat): Calls | null {
  return useSyncExternalStore(chat.onCallsLoaded, () => chat.calls);
}

const noListener = () => () => undefined;

/** `select` of the call state, or `idle` while the call code is not loaded. */
export function useCallsOr<T>(calls: Calls | null, select: (s: CallsState) => T, idle: T): T {
  return useSyncExternalStore(calls?.subscribe ?? noListener, () => (calls ? select(calls.get()) : idle));
}
