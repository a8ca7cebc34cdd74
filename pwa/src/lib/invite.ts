// invite.ts — a guild invite's link (`/invite/CODE`): reading the code from the address the app
// was opened at, or from what someone pasted, and keeping it for the tab while they sign up or
// sign in (sessionStorage), so the join page comes back after. No heavy imports: App.tsx reads
// it before anything else loads.

const KEY = "kitsulan.invite";

/** The code of an invite from what someone pasted: the code, or a link `…/invite/CODE`. Null for
 * text that cannot be one (the server's codes are base64url, 22 characters). */
export function inviteCode(text: string): string | null {
  const t = text.trim();
  const m = /\/invite\/([A-Za-z0-9_-]+)\/?(?:[?#].*)?$/.exec(t);
  const code = m ? m[1] : t;
  return code && /^[A-Za-z0-9_-]{8,64}$/.test(code) ? code : null;
}

/** The code of an invite page's path, `/invite/CODE` (null for any other path). */
export function invitePath(pathname: string): string | null {
  const m = /^\/invite\/([A-Za-z0-9_-]{8,64})\/?$/.exec(pathname);
  return m?.[1] ?? null;
}

/** The link of an invite on this server. */
export function inviteLink(origin: string, code: string): string {
  return `${origin}/invite/${code}`;
}

/** Takes the invite from the address bar (an invite page opened): kept for this tab, and the
 * address goes back to the app's root, so a reload does not take it again. */
export function takeInviteFromAddress(): void {
  const code = invitePath(window.location.pathname);
  if (!code) return;
  try {
    sessionStorage.setItem(KEY, code);
  } catch {
    // Storage refused (private mode): the join page cannot come back after signing in.
  }
  window.history.replaceState(null, "", "/");
}

/** The invite waiting to be shown (an invite page opened in this tab), if any. */
export function pendingInvite(): string | null {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

/** The waiting invite was shown (joined, or the person closed it). */
export function clearPendingInvite(): void {
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    // nothing kept
  }
}
