// presence.ts — who among our contacts is online now. The server tells only contacts (accounts
// sharing a conversation both have accepted; docs/gateway.md): the list comes with each
// connection's Ready, changes as PresenceEvents. While we are not connected we know nothing, so
// the list empties (the next Ready fills it again).
import type { ChatEvent } from "./store";

export interface PresenceState {
  /** Contacts online now (never ourselves). */
  online: Record<string, true>;
  me: { accountId: string };
}

export function apply<S extends PresenceState>(state: S, event: ChatEvent): S {
  switch (event.type) {
    case "presenceReady": {
      const online: Record<string, true> = {};
      for (const id of event.accountIds) if (id !== state.me.accountId) online[id] = true;
      return { ...state, online };
    }
    case "presence": {
      if (event.accountId === state.me.accountId) return state;
      const has = state.online[event.accountId] === true;
      if (has === event.online) return state;
      const online = { ...state.online };
      if (event.online) online[event.accountId] = true;
      else delete online[event.accountId];
      return { ...state, online };
    }
    case "status":
      return event.status === "online" || Object.keys(state.online).length === 0 ? state : { ...state, online: {} };
    default:
      return state;
  }
}
