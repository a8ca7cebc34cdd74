// keys.ts — the rules of a voice room's media keys, as pure functions over plain data (the I/O,
// Olm and SFrame itself are elsewhere: engine.ts shares, the crypto crate seals, room.ts wires).
//
// Each device in a voice room sends its frames under its own random base key and key id (kid),
// sealed with SFrame (RFC 9605) in the crypto crate. Its key goes over Olm to every device of
// every other participant. When someone joins, they get the current key. When someone leaves,
// the device makes a new key and kid and shares it with those who remain before using it: what
// it says afterwards cannot be opened by the one who left.
// A share that fails for someone (their account key changed, no Olm session, the server
// refused) is noted per person (KeyHealth) and said on their tile; it is tried again with the
// next change of the room or by hand. A person whose key has not reached us after a grace
// period is said too.
// # Security
// The rotation on leave is what keeps a departed participant out; the SFU, which forwards the
// frames, never holds a key.

/** Who joined and who left the room between two lists of participants (account ids), us aside. */
export function diffParticipants(prev: readonly string[], next: readonly string[], me: string): { joined: string[]; left: string[] } {
  const before = new Set(prev.filter((a) => a !== me));
  const after = new Set(next.filter((a) => a !== me));
  return {
    joined: [...after].filter((a) => !before.has(a)),
    left: [...before].filter((a) => !after.has(a)),
  };
}

/** What this device does with its own key when the room's participants change. */
export type KeyPlan =
  /** Send the current key to these accounts' devices (they just joined). */
  | { kind: "share"; to: string[] }
  /** Make a new key and kid, send it to these accounts' devices (all who remain), then use it. */
  | { kind: "rotate"; to: string[] }
  | { kind: "none" };

/**
 * The plan for a change of participants from `prev` to `next`: a rotation as soon as anyone
 * left (the new key goes to everyone who remains, the newcomers included), else the current key
 * to those who joined.
 */
export function planForChange(prev: readonly string[], next: readonly string[], me: string): KeyPlan {
  const { joined, left } = diffParticipants(prev, next, me);
  const others = [...new Set(next.filter((a) => a !== me))];
  if (left.length > 0) return { kind: "rotate", to: others };
  if (joined.length > 0) return { kind: "share", to: joined };
  return { kind: "none" };
}

/** A random key id for SFrame (0..2^32-1) other than those in `taken`. */
export function randomKid(taken: ReadonlySet<number> = new Set(), random: () => number = randomU32): number {
  for (;;) {
    const kid = random() >>> 0;
    if (!taken.has(kid)) return kid;
  }
}

function randomU32(): number {
  const a = new Uint32Array(1);
  crypto.getRandomValues(a);
  return a[0] ?? 0;
}

/** A fresh 16-byte SFrame base key. */
export function randomBaseKey(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(16));
}

/** A key a participant's device sent us. */
export interface PeerKey {
  kid: number;
  accountId: string;
  deviceId: string;
}

/**
 * The peers' keys this device holds for the room it is in, by kid: which person a kid belongs
 * to (for the speaking indicator), which kids go when a person leaves, and whether a key is new
 * (a device that sent a key we did not have may have just reloaded: it gets ours back).
 */
export class PeerKeys {
  private readonly byKid = new Map<number, PeerKey>();

  /**
   * Records a key: "new" when this kid was not held before (the sender gets our key back),
   * "same" when its device sent it again. A kid another device holds is "taken" and the key is
   * not recorded: a participant cannot take over another's kid to have their voice shown as
   * someone else's or to silence them.
   */
  add(key: PeerKey): "new" | "same" | "taken" {
    const known = this.byKid.get(key.kid);
    if (known && known.deviceId !== key.deviceId) return "taken";
    this.byKid.set(key.kid, key);
    return known ? "same" : "new";
  }

  accountOf(kid: number): string | undefined {
    return this.byKid.get(kid)?.accountId;
  }

  /** Forgets the kids of the accounts that left and returns them, for the worker to drop. A
   * device's older kids (before it rotated) stay until its person leaves: frames sealed under
   * them may still be on the way. */
  removeAccounts(accounts: readonly string[]): number[] {
    const gone = new Set(accounts);
    const kids: number[] = [];
    for (const [kid, k] of this.byKid) if (gone.has(k.accountId)) kids.push(kid);
    for (const kid of kids) this.byKid.delete(kid);
    return kids;
  }

  /** Whether any key of `accountId` is held (their frames can be opened here). */
  hasAccount(accountId: string): boolean {
    for (const k of this.byKid.values()) if (k.accountId === accountId) return true;
    return false;
  }

  remove(kid: number): void {
    this.byKid.delete(kid);
  }

  get kids(): number[] {
    return [...this.byKid.keys()];
  }

  clear(): void {
    this.byKid.clear();
  }
}

/**
 * Who is speaking: a level (0..1) per receiving slot, the kid last seen on each slot, the kid →
 * person map, and our own level. A person speaks when a slot carrying their kid is above
 * `threshold`; the level of a person is the highest of their slots'.
 */
export function levelsByPerson(
  slotLevels: readonly number[],
  slotKids: ReadonlyMap<number, number>,
  accountOf: (kid: number) => string | undefined,
): Map<string, number> {
  const out = new Map<string, number>();
  slotLevels.forEach((level, slot) => {
    const kid = slotKids.get(slot);
    if (kid === undefined) return;
    const account = accountOf(kid);
    if (!account) return;
    out.set(account, Math.max(out.get(account) ?? 0, level));
  });
  return out;
}

// ---- Keys that did not get through ----

/**
 * Why our key could not be sent to a person: a server reason (errors.ts's reasonOf), the crypto
 * crate's error code, or ACCOUNT_KEY_CHANGED (their account key changed and is not verified:
 * nothing is encrypted for them until it is).
 */
export function shareFailureReason(err: unknown, serverReason: (err: unknown) => string | null): string {
  if ((err as { name?: unknown } | null)?.name === "AccountKeyChanged") return "ACCOUNT_KEY_CHANGED";
  const server = serverReason(err);
  if (server) return server;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && code ? code : "UNKNOWN";
}

/** Why a share did not reach a person: none of their devices had an Olm session to be made. */
export const NO_OLM_SESSION = "NO_OLM_SESSION";

/**
 * Sends a key to the accounts `to` with `share` (engine.shareVoiceKey: it resolves with the
 * accounts none of whose devices it could reach) and says, per person, whether it went: all at
 * once as a rule, and only when that throws, one by one, so that one person's failure (their
 * account key changed, the server refused) is known as theirs and the others still get the key.
 * `stop` ends the one-by-one tries (the room was left). Never throws.
 */
export async function shareToEach(
  to: readonly string[],
  share: (accounts: string[]) => Promise<{ withoutOlm: string[] }>,
  stop: () => boolean = () => false,
): Promise<{ sent: string[]; failed: Array<[string, unknown]> }> {
  const sent: string[] = [];
  const failed: Array<[string, unknown]> = [];
  const went = (accounts: readonly string[], { withoutOlm }: { withoutOlm: string[] }) => {
    for (const a of accounts) {
      if (withoutOlm.includes(a)) failed.push([a, { code: NO_OLM_SESSION }]);
      else sent.push(a);
    }
  };
  if (to.length === 0) return { sent, failed };
  try {
    went(to, await share([...to]));
  } catch (err) {
    if (to.length === 1) failed.push([to[0] ?? "", err]);
    else
      for (const a of to) {
        if (stop()) break;
        try {
          went([a], await share([a]));
        } catch (one) {
          failed.push([a, one]);
        }
      }
  }
  return { sent, failed };
}

/** What keeps a person and us from hearing each other, as shown on their tile. */
export interface KeyTrouble {
  /** Our key did not reach their devices, and why (shareFailureReason): they cannot open us. */
  notSent?: string;
  /** No key of theirs reached us after NO_KEY_GRACE_MS in the room: we cannot open them. */
  noKey?: true;
}

/** How long a person is in the room with us before "no key from them yet" is said: their key
 * normally arrives within a second or two of either of us joining. */
export const NO_KEY_GRACE_MS = 8000;

/**
 * The state of the key exchange with each other person in the room: whose share of our key
 * failed (retried on the next change of the room, or by hand), and since when each person has
 * been in the room with us (for "no key from them yet").
 */
export class KeyHealth {
  private readonly failed = new Map<string, string>();
  private readonly since = new Map<string, number>();

  /** The room's participants now (at `now`): those new get their clock, those gone are forgotten. */
  participants(now: readonly string[], me: string, at: number): void {
    const present = new Set(now.filter((a) => a !== me));
    for (const a of present) if (!this.since.has(a)) this.since.set(a, at);
    for (const a of [...this.since.keys()]) if (!present.has(a)) this.since.delete(a);
    for (const a of [...this.failed.keys()]) if (!present.has(a)) this.failed.delete(a);
  }

  /** A share to `accountId` failed for `reason`. */
  shareFailed(accountId: string, reason: string): void {
    this.failed.set(accountId, reason);
  }

  /** A share to `accountId` went out: nothing to retry for them. */
  shared(accountId: string): void {
    this.failed.delete(accountId);
  }

  /** The people in the room whose share failed: retried with our current key. */
  toRetry(): string[] {
    return [...this.failed.keys()].filter((a) => this.since.has(a)).sort();
  }

  /** Each person with a problem, at `now`; `holdsKeyOf` says whether a key of theirs is held. */
  troubles(holdsKeyOf: (accountId: string) => boolean, now: number, graceMs = NO_KEY_GRACE_MS): Record<string, KeyTrouble> {
    const out: Record<string, KeyTrouble> = {};
    for (const [a, at] of this.since) {
      const trouble: KeyTrouble = {};
      const reason = this.failed.get(a);
      if (reason) trouble.notSent = reason;
      if (!holdsKeyOf(a) && now - at >= graceMs) trouble.noKey = true;
      if (trouble.notSent || trouble.noKey) out[a] = trouble;
    }
    return out;
  }

  clear(): void {
    this.failed.clear();
    this.since.clear();
  }
}

/** Whether two sets of troubles say the same (the state is not replaced every tick). */
export function sameTroubles(a: Readonly<Record<string, KeyTrouble>>, b: Readonly<Record<string, KeyTrouble>>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k]?.notSent === b[k]?.notSent && a[k]?.noKey === b[k]?.noKey);
}

/** The RMS level above which a voice counts as speaking (quiet rooms read about 0.001). */
export const SPEAKING_LEVEL = 0.01;
