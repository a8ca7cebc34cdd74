// profiles.ts — who we are (name, username, picture) and the public profiles of the people we
// share conversations with (cached in IndexedDB between sessions); avatar changes of accounts
// (ours included) from our own RPCs or AvatarEvents. A group's picture lives on its conversation
// (conversations.ts sees the same `avatar` event).
import type { Client } from "@connectrpc/connect";
import type { AccountService } from "../gen/kitsulan/v1/account_pb";
import type { AvatarInfo, AvatarService } from "../gen/kitsulan/v1/avatar_pb";
import type { ChatEvent, StateAccess } from "./store";

export interface Me {
  accountId: string;
  deviceId: string;
  displayName: string;
  username: string;
  avatarId: string;
  avatarVersion: number;
}

/** What everyone on the server sees of an account. */
export interface PersonProfile {
  username: string;
  displayName: string;
  /** The avatar's id ("" or absent: none) and version (AvatarService; contacts see the picture). */
  avatarId?: string;
  avatarVersion?: number;
}

/** A profile as the server sends it (GetProfiles, LookupAccount). */
export type ProfileMessage = { accountId: string; username: string; displayName: string; avatar?: AvatarInfo | undefined };

/** Whose picture changed: an account or a group. */
export type AvatarOwner = { case: "accountId" | "conversationId"; value: string };

export interface ProfilesState {
  me: Me;
  profiles: Record<string, PersonProfile>;
}

export function apply<S extends ProfilesState>(state: S, event: ChatEvent): S {
  switch (event.type) {
    case "profilesCached":
      return { ...state, profiles: event.profiles };
    case "profilesReceived": {
      if (event.profiles.length === 0) return state;
      const profiles = { ...state.profiles };
      for (const p of event.profiles) {
        profiles[p.accountId] = {
          username: p.username,
          displayName: p.displayName,
          avatarId: p.avatar?.avatarId ?? "",
          avatarVersion: Number(p.avatar?.avatarVersion ?? 0n),
        };
      }
      return { ...state, profiles };
    }
    case "meChanged":
      return { ...state, me: { ...state.me, ...event.me } };
    case "avatar": {
      // An account's picture; an older version than the one we hold is ignored, and so is an
      // account we hold no profile of (Profiles.applyAvatar fetches it instead).
      if (event.owner.case !== "accountId") return state;
      const accountId = event.owner.value;
      const avatarId = event.avatar.avatarId;
      const avatarVersion = Number(event.avatar.avatarVersion);
      if (accountId === state.me.accountId) {
        if (state.me.avatarVersion > avatarVersion) return state;
        return { ...state, me: { ...state.me, avatarId, avatarVersion } };
      }
      const p = state.profiles[accountId];
      if (!p || (p.avatarVersion ?? 0) > avatarVersion) return state;
      return { ...state, profiles: { ...state.profiles, [accountId]: { ...p, avatarId, avatarVersion } } };
    }
    default:
      return state;
  }
}

/** The name to show for an account: display name, else username ("" while unknown). */
export function nameOf(state: ProfilesState, accountId: string): string {
  if (accountId === state.me.accountId) return state.me.displayName || state.me.username;
  const p = state.profiles[accountId];
  return p ? p.displayName || p.username : "";
}

/** Where profiles are kept between sessions (IndexedDB). */
export interface ProfileCache {
  load(): Promise<Record<string, PersonProfile> | undefined>;
  save(profiles: Record<string, PersonProfile>): Promise<void>;
}

export interface ProfilesDeps {
  accounts: Pick<Client<typeof AccountService>, "getMyAccount" | "getProfiles" | "updateProfile" | "lookupAccount">;
  avatars: Pick<Client<typeof AvatarService>, "setMyAvatar" | "removeMyAvatar" | "setGroupAvatar" | "removeGroupAvatar">;
  cache: ProfileCache;
}

export class Profiles {
  constructor(
    private readonly state: StateAccess,
    private readonly deps: ProfilesDeps,
  ) {}

  /** Takes the profiles cached by the last session. */
  async restore(): Promise<void> {
    this.state.dispatch({ type: "profilesCached", profiles: (await this.deps.cache.load()) ?? {} });
  }

  /** Loads our own account (name, username, picture). */
  async loadMe(): Promise<void> {
    try {
      const res = await this.deps.accounts.getMyAccount({});
      if (res.account) {
        this.state.dispatch({
          type: "meChanged",
          me: {
            displayName: res.account.displayName,
            username: res.account.username,
            avatarId: res.account.avatar?.avatarId ?? "",
            avatarVersion: Number(res.account.avatar?.avatarVersion ?? 0n),
          },
        });
      }
    } catch {
      // offline: the name comes later
    }
  }

  nameOf(accountId: string): string {
    return nameOf(this.state.get(), accountId);
  }

  private async remember(list: ProfileMessage[]): Promise<void> {
    if (list.length === 0) return;
    this.state.dispatch({ type: "profilesReceived", profiles: list });
    await this.deps.cache.save(this.state.get().profiles);
  }

  /**
   * Fetches the profiles of `accountIds` (at most 1,000 per call): only those we have no name
   * for yet, or all of them with `refresh` (names change, and the server sends no event for it).
   */
  async load(accountIds: string[], refresh = false): Promise<void> {
    const { me, profiles } = this.state.get();
    const wanted = [...new Set(accountIds)].filter((id) => id !== me.accountId && (refresh || !profiles[id]));
    for (let i = 0; i < wanted.length; i += 1000) {
      const res = await this.deps.accounts.getProfiles({ accountIds: wanted.slice(i, i + 1000) });
      await this.remember(res.profiles);
    }
  }

  /** Finds someone by username (ACCOUNT_NOT_FOUND when nobody has it). */
  async lookUp(username: string): Promise<ProfileMessage> {
    const res = await this.deps.accounts.lookupAccount({ username: username.trim().replace(/^@/, "").toLowerCase() });
    if (!res.profile) throw new Error("LookupAccount answered without a profile");
    await this.remember([res.profile]);
    return res.profile;
  }

  /** Changes our display name (1–64 characters). */
  async updateProfile(displayName: string): Promise<void> {
    const res = await this.deps.accounts.updateProfile({ displayName: displayName.trim() });
    if (res.account) {
      this.state.dispatch({ type: "meChanged", me: { displayName: res.account.displayName, username: res.account.username } });
    }
  }

  /** Sets our picture from an image file (PNG, JPEG or WebP; the server checks and resizes it). */
  async setMyAvatar(file: Blob): Promise<void> {
    const res = await this.deps.avatars.setMyAvatar({ image: new Uint8Array(await file.arrayBuffer()) });
    if (res.avatar) this.applyAvatar({ case: "accountId", value: this.state.get().me.accountId }, res.avatar);
  }

  /** Removes our picture. */
  async removeMyAvatar(): Promise<void> {
    const res = await this.deps.avatars.removeMyAvatar({});
    if (res.avatar) this.applyAvatar({ case: "accountId", value: this.state.get().me.accountId }, res.avatar);
  }

  /** Sets a group's picture (owners and admins). */
  async setGroupAvatar(conversationId: string, file: Blob): Promise<void> {
    const res = await this.deps.avatars.setGroupAvatar({ conversationId, image: new Uint8Array(await file.arrayBuffer()) });
    if (res.avatar) this.applyAvatar({ case: "conversationId", value: conversationId }, res.avatar);
  }

  /** Removes a group's picture (owners and admins). */
  async removeGroupAvatar(conversationId: string): Promise<void> {
    const res = await this.deps.avatars.removeGroupAvatar({ conversationId });
    if (res.avatar) this.applyAvatar({ case: "conversationId", value: conversationId }, res.avatar);
  }

  /**
   * Notes the avatar of an account or a group as it is now (from our own change or an
   * AvatarEvent); an older version than the one we hold is ignored, and the profile of an
   * account we know nothing of is fetched instead (with its picture).
   */
  applyAvatar(owner: AvatarOwner, avatar: AvatarInfo): void {
    const before = this.state.get();
    const someone = owner.case === "accountId" && owner.value !== before.me.accountId;
    if (someone && !before.profiles[owner.value]) {
      void this.load([owner.value]).catch(() => undefined);
      return;
    }
    this.state.dispatch({ type: "avatar", owner, avatar });
    const profiles = this.state.get().profiles;
    if (someone && profiles !== before.profiles) void this.deps.cache.save(profiles).catch(() => undefined);
  }
}
