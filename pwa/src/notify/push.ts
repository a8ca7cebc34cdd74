// push.ts — Web Push: "Notify me when the app is closed" (Settings → Notifications). The
// browser subscribes with the server's VAPID key (PushService.GetPushConfig) and the
// subscription goes to the server (SetPushSubscription); the server then sends a content-free
// push when a message arrives while no tab of this device is connected, and public/sw.js shows
// "New message" in the person's language (the texts are handed to it in the Cache API,
// `pushTexts`) and opens that conversation when tapped.
//
// Push needs the browser's push service, on the internet: in a LAN without internet
// `pushManager.subscribe` fails, and the switch says plainly that notifications come only while
// KitsuLAN is open in a tab (the open tab's notifications, notifications.ts, still work). In an
// insecure context there is no service worker and no push at all; the switch is off and says why.
import { pushClient } from "../api";
import { reasonOf } from "../errors";
import { pageFacts } from "../lib/secureContext";
import { fromBase64Url, supportOf, toBase64Url, type PushSupport } from "./pushSupport";

/** Whether this page can use push at all (before asking the server or the browser). */
export function pushSupport(): PushSupport {
  return supportOf(pageFacts(), "PushManager" in window && "Notification" in window);
}

/** What turning push on came to. */
export type PushResult =
  | "on"
  /** The person did not allow notifications. */
  | "denied"
  /** The server's admin turned push off. */
  | "server-off"
  /** The browser's push service cannot be reached (a LAN without internet, usually). */
  | "unreachable"
  /** The server refused the subscription (its ErrorReason). */
  | { refused: string };

/** Whether `subscription` was made with `key` (a new server key needs a new subscription). */
function sameKey(subscription: PushSubscription, key: string): boolean {
  const used = subscription.options.applicationServerKey;
  return used !== null && toBase64Url(used) === key;
}

const REGISTERED = "kitsulan.push.endpoint";
const TEXTS_CACHE = "kitsulan-push-texts";
const TEXTS_URL = "/__kitsulan/push-texts";

/** The texts public/sw.js shows (it cannot read the app's language itself). */
export interface PushTexts {
  newMessage: string;
  newMessages: string;
}

/** The texts of a push notification in the language `t` speaks. */
export function pushTexts(t: (key: "pushNewMessage" | "pushNewMessages") => string): PushTexts {
  return { newMessage: t("pushNewMessage"), newMessages: t("pushNewMessages") };
}

/** Hands the service worker the texts of a push notification in the person's language. */
export async function savePushTexts(texts: PushTexts): Promise<void> {
  if (!("caches" in window)) return;
  const cache = await caches.open(TEXTS_CACHE);
  await cache.put(TEXTS_URL, new Response(JSON.stringify(texts), { headers: { "content-type": "application/json" } }));
}

/** Keeps the service worker's texts in the person's language (after a language change). */
export async function refreshPushTexts(texts: PushTexts): Promise<void> {
  if (localStorage.getItem(REGISTERED) !== null) await savePushTexts(texts);
}

async function readyRegistration(): Promise<ServiceWorkerRegistration> {
  return navigator.serviceWorker.ready;
}

async function register(subscription: PushSubscription): Promise<PushResult> {
  const p256dh = subscription.getKey("p256dh");
  const auth = subscription.getKey("auth");
  if (!p256dh || !auth) return "unreachable";
  try {
    await pushClient.setPushSubscription({
      endpoint: subscription.endpoint,
      p256dh: toBase64Url(p256dh),
      auth: toBase64Url(auth),
    });
  } catch (err) {
    return { refused: reasonOf(err) };
  }
  localStorage.setItem(REGISTERED, subscription.endpoint);
  return "on";
}

/** Turns push on (call from a click: it may ask for permission). */
export async function enablePush(texts: PushTexts): Promise<PushResult> {
  const answer = Notification.permission === "default" ? await Notification.requestPermission() : Notification.permission;
  if (answer !== "granted") return "denied";
  const config = await pushClient.getPushConfig({});
  if (!config.enabled || !config.vapidPublicKey) return "server-off";
  await savePushTexts(texts);
  const reg = await readyRegistration();
  let subscription = await reg.pushManager.getSubscription();
  if (subscription && !sameKey(subscription, config.vapidPublicKey)) {
    await subscription.unsubscribe().catch(() => false);
    subscription = null;
  }
  try {
    subscription ??= await reg.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: fromBase64Url(config.vapidPublicKey),
    });
  } catch (err) {
    // Chromium: "AbortError: Registration failed - push service error"; Firefox: the push
    // service's WebSocket does not connect. Both mean: no way to the push service from here.
    console.warn("push subscription failed", err);
    return "unreachable";
  }
  return register(subscription);
}

/** Turns push off on this device (the browser's subscription and the server's copy). */
export async function disablePush(): Promise<void> {
  localStorage.removeItem(REGISTERED);
  if ("serviceWorker" in navigator) {
    const reg = await navigator.serviceWorker.getRegistration();
    const subscription = await reg?.pushManager?.getSubscription();
    await subscription?.unsubscribe().catch(() => false);
  }
  await pushClient.deletePushSubscription({}).catch(() => undefined);
}

/** Whether push is on for this device: the server has a subscription and the browser too. */
export async function pushIsOn(): Promise<boolean> {
  if (pushSupport() !== "ok") return false;
  const reg = await navigator.serviceWorker.getRegistration();
  const subscription = await reg?.pushManager?.getSubscription();
  if (!subscription) return false;
  const config = await pushClient.getPushConfig({});
  return config.subscribed;
}

/**
 * At start: when the browser replaced the subscription while the app was closed
 * (`pushsubscriptionchange`, which public/sw.js answers by subscribing again), tell the server
 * the new one; when the server lost it (gone at the push service) while the browser still has
 * one, register it again. Does nothing unless push was turned on here.
 */
export async function syncPush(texts: PushTexts): Promise<void> {
  const registered = localStorage.getItem(REGISTERED);
  if (registered === null || pushSupport() !== "ok" || Notification.permission !== "granted") return;
  await savePushTexts(texts);
  const reg = await navigator.serviceWorker.getRegistration();
  const subscription = await reg?.pushManager?.getSubscription();
  const config = await pushClient.getPushConfig({});
  if (!subscription || !config.enabled || !sameKey(subscription, config.vapidPublicKey)) {
    await enablePush(texts).catch(() => undefined);
    return;
  }
  if (subscription.endpoint !== registered || !config.subscribed) await register(subscription);
}

/** On sign-out: the browser's subscription goes (the server deletes its copy with the device). */
export async function forgetPush(): Promise<void> {
  localStorage.removeItem(REGISTERED);
  if (!("serviceWorker" in navigator)) return;
  const reg = await navigator.serviceWorker.getRegistration();
  const subscription = await reg?.pushManager?.getSubscription().catch(() => null);
  await subscription?.unsubscribe().catch(() => false);
}
