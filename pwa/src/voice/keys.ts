// keys.ts — the rules of a voice room's media keys, as pure functions over plain data (the I/O,
// Olm and SFrame itself are elsewhere: engine.ts shares, the crypto crate seals, room.ts wires).
//
// Each device in a voice room sends its frames under its own random base key and key id (kid),
// sealed with SFrame (RFC 9605) in the crypto crate. Its key goes over Olm to every device of
// every other participant. When someone joins, they get the current key. When someone leaves,
// the device makes a new key and kid and shares it with those who remain before using it: what
// it says afterwards cannot be opened by the one who left.
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

/** The RMS level above which a voice counts as speaking (quiet rooms read about 0.001). */
export const SPEAKING_LEVEL = 0.01;
