// notifications.ts — system notifications for new messages (Notification API, shown through the
// service worker's showNotification where there is one) and the person's choices about them.
// Permission is asked only when the person turns them on in Settings, never on load. A
// notification names the conversation and nothing else unless the person opted in to
// "show message text"; clicking one focuses the app and opens that conversation (public/sw.js
// posts OPEN_CONVERSATION to the page, or opens /?conversation=<id> when no window is left).

/** What the person chose (kept in localStorage; cleared on sign-out). */
export interface NotifyPrefs {
  /** Show system notifications while the tab is hidden. */
  system: boolean;
  /** Put the sender and the message text in them (otherwise: content-free). */
  preview: boolean;
}

const STORAGE = "kitsulan.notifications";
const DEFAULTS: NotifyPrefs = { system: false, preview: false };
/** The message public/sw.js posts to the page when a notification is clicked. */
export const OPEN_CONVERSATION = "kitsulan:open-conversation";
/** The query parameter of a window opened from a notification. */
export const CONVERSATION_PARAM = "conversation";

export function loadPrefs(): NotifyPrefs {
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE) ?? "null") as Partial<NotifyPrefs> | null;
    return { system: saved?.system === true, preview: saved?.preview === true };
  } catch {
    return DEFAULTS;
  }
}

export function savePrefs(prefs: NotifyPrefs): void {
  localStorage.setItem(STORAGE, JSON.stringify(prefs));
}

export type Permission = NotificationPermission | "unsupported";

export function permission(): Permission {
  return "Notification" in window ? Notification.permission : "unsupported";
}

/** Asks the browser for permission (call only from a click). */
export async function requestPermission(): Promise<Permission> {
  if (!("Notification" in window)) return "unsupported";
  if (Notification.permission !== "default") return Notification.permission;
  return Notification.requestPermission();
}

/** The service worker registration, if this page has an active one. */
async function registration(): Promise<ServiceWorkerRegistration | undefined> {
  if (!("serviceWorker" in navigator)) return undefined;
  const reg = await navigator.serviceWorker.getRegistration().catch(() => undefined);
  return reg?.active ? reg : undefined;
}

/**
 * Shows a system notification for a conversation (one per conversation: a newer one replaces
 * it). `onClick` runs when the page itself showed it (no service worker).
 */
export async function showSystem(
  title: string,
  body: string,
  conversationId: string,
  onClick: () => void,
): Promise<void> {
  if (permission() !== "granted") return;
  const options: NotificationOptions = {
    body,
    tag: `conversation:${conversationId}`,
    icon: "/favicon.svg",
    data: { conversationId },
  };
  const reg = await registration();
  if (reg) {
    await reg.showNotification(title, options);
    return;
  }
  const n = new Notification(title, options);
  n.onclick = () => {
    window.focus();
    onClick();
    n.close();
  };
}

/** Closes every notification this app shows (on sign-out) and forgets the choices. */
export async function resetNotifications(): Promise<void> {
  localStorage.removeItem(STORAGE);
  const reg = await registration();
  const shown = (await reg?.getNotifications().catch(() => [])) ?? [];
  for (const n of shown) n.close();
}

/** The conversation a notification asked to open when it started this window, if any. */
export function conversationFromUrl(): string | null {
  const url = new URL(window.location.href);
  const id = url.searchParams.get(CONVERSATION_PARAM);
  if (id === null) return null;
  url.searchParams.delete(CONVERSATION_PARAM);
  window.history.replaceState(null, "", url);
  return id;
}
