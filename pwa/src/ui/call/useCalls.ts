// useCalls.ts — reads the call state (calls/calls.ts) in a component.
import { useSyncExternalStore } from "react";
import type { Calls, CallsState } from "../../calls/calls";

export function useCalls<T>(calls: Calls, select: (s: CallsState) => T): T {
  return useSyncExternalStore(calls.subscribe, () => select(calls.get()));
}
