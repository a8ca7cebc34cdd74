// secureContext.ts — what a page opened in an insecure context cannot do. Opened over plain
// HTTP by a LAN address or name (http://192.168.1.20:8080, http://kitsulan.lan:8080) the browser
// gives the page no service worker (no offline start, no install), no notifications and no
// camera or microphone (calls, QR scanning); http://localhost and https:// pages are secure.
// The banner (ui/InsecureBanner.tsx) lists what is missing, and the call buttons and the
// notifications switch say why they are off. The decision is made from plain facts about the
// page (pageFacts reads them from the browser), so it is tested without one.

/** What the decision needs to know about the page. */
export interface PageFacts {
  /** `window.isSecureContext`. */
  secure: boolean;
  /** `location.protocol`, e.g. "http:". */
  protocol: string;
  /** `location.port`, "" for the scheme's default. */
  port: string;
  /** The browser offers service workers (`"serviceWorker" in navigator`). */
  serviceWorker: boolean;
  /** The browser offers the camera and microphone (`navigator.mediaDevices.getUserMedia`). */
  media: boolean;
}

/** Something that does not work in an insecure context, in the order the banner lists them. */
export type Limit = "offline" | "notifications" | "calls";

/** What the banner says, or null when the page is secure (no banner). */
export interface InsecureWarning {
  /** What does not work on this page. */
  limits: Limit[];
  /** The same server on this computer's loopback address (a secure context over plain HTTP),
   * for someone sitting at the server; null when the page is not plain HTTP. */
  localUrl: string | null;
}

/** The facts about the page this code runs in. */
export function pageFacts(): PageFacts {
  return {
    secure: window.isSecureContext,
    protocol: location.protocol,
    port: location.port,
    serviceWorker: "serviceWorker" in navigator,
    // In an insecure context `navigator.mediaDevices` is undefined.
    media: typeof navigator.mediaDevices?.getUserMedia === "function",
  };
}

/** What does not work on a page with these facts (nothing on a secure page). */
export function limitsOf(facts: PageFacts): Limit[] {
  if (facts.secure) return [];
  const limits: Limit[] = [];
  if (!facts.serviceWorker) limits.push("offline");
  // Browsers expose the Notification API on insecure pages but refuse it permission there.
  limits.push("notifications");
  if (!facts.media) limits.push("calls");
  return limits;
}

/** Whether `limit` applies to a page with these facts. */
export function isLimited(limit: Limit, facts: PageFacts = pageFacts()): boolean {
  return limitsOf(facts).includes(limit);
}

/** The banner's content for a page with these facts, or null when it is secure. */
export function insecureWarning(facts: PageFacts): InsecureWarning | null {
  if (facts.secure) return null;
  const localUrl = facts.protocol === "http:" ? `http://localhost${facts.port ? `:${facts.port}` : ""}/` : null;
  return { limits: limitsOf(facts), localUrl };
}
