import { describe, expect, it, vi } from "vitest";
import type { Client } from "@connectrpc/connect";
import type { AccountService } from "../gen/kitsulan/v1/account_pb";
import type { AvatarService } from "../gen/kitsulan/v1/avatar_pb";
import { apply, nameOf, Profiles, type PersonProfile, type ProfileMessage } from "./profiles";
import { BOB, CAROL, CONV, ME, TestState, avatar, fakeClient, state } from "./testkit";

const bobProfile: PersonProfile = { username: "bob", displayName: "Bob", avatarId: "b1", avatarVersion: 1 };

describe("profiles.apply", () => {
  it("keeps the profiles the server sent, with their pictures", () => {
    const sent: ProfileMessage[] = [
      { accountId: BOB, username: "bob", displayName: "Bob", avatar: avatar("b1", 1n) },
      { accountId: CAROL, username: "carol", displayName: "" },
    ];
    const s = apply(state(), { type: "profilesReceived", profiles: sent });
    expect(s.profiles).toEqual({
      [BOB]: bobProfile,
      [CAROL]: { username: "carol", displayName: "", avatarId: "", avatarVersion: 0 },
    });
    expect(apply(s, { type: "profilesReceived", profiles: [] })).toBe(s);
  });

  it("changes our own name and picture, a newer picture only", () => {
    let s = apply(state(), { type: "meChanged", me: { displayName: "Me", username: "me" } });
    expect(s.me).toMatchObject({ accountId: ME, displayName: "Me", username: "me" });
    const mine = { case: "accountId" as const, value: ME };
    s = apply(s, { type: "avatar", owner: mine, avatar: avatar("m2", 2n) });
    expect(s.me).toMatchObject({ avatarId: "m2", avatarVersion: 2 });
    expect(apply(s, { type: "avatar", owner: mine, avatar: avatar("m1", 1n) })).toBe(s);
    // Removed: a newer version without a picture.
    expect(apply(s, { type: "avatar", owner: mine, avatar: avatar("", 3n) }).me).toMatchObject({ avatarId: "", avatarVersion: 3 });
  });

  it("changes a known person's picture (newer only), not an unknown one's nor a group's", () => {
    const s = state({ profiles: { [BOB]: bobProfile } });
    const bob = { case: "accountId" as const, value: BOB };
    expect(apply(s, { type: "avatar", owner: bob, avatar: avatar("b2", 2n) }).profiles[BOB]).toMatchObject({
      displayName: "Bob",
      avatarId: "b2",
      avatarVersion: 2,
    });
    expect(apply(s, { type: "avatar", owner: bob, avatar: avatar("b0", 0n) })).toBe(s);
    expect(apply(s, { type: "avatar", owner: { case: "accountId", value: CAROL }, avatar: avatar("c", 1n) })).toBe(s);
    expect(apply(s, { type: "avatar", owner: { case: "conversationId", value: CONV }, avatar: avatar("g", 9n) })).toBe(s);
  });

  it("names: display name, else username, else nothing yet", () => {
    const s = state({
      me: { accountId: ME, deviceId: "d", displayName: "", username: "me", avatarId: "", avatarVersion: 0 },
      profiles: { [BOB]: bobProfile, [CAROL]: { username: "carol", displayName: "" } },
    });
    expect(nameOf(s, ME)).toBe("me");
    expect(nameOf(s, BOB)).toBe("Bob");
    expect(nameOf(s, CAROL)).toBe("carol");
    expect(nameOf(s, "someone")).toBe("");
  });
});

type Accounts = Client<typeof AccountService>;
type Avatars = Client<typeof AvatarService>;

function setup(accounts: Partial<Accounts>, avatars: Partial<Avatars> = {}, s = state()) {
  const st = new TestState(s);
  const a = fakeClient<Accounts>(accounts as never);
  const v = fakeClient<Avatars>(avatars as never);
  const cache = {
    load: vi.fn(() => Promise.resolve<Record<string, PersonProfile> | undefined>({ [BOB]: bobProfile })),
    save: vi.fn((_p: Record<string, PersonProfile>) => Promise.resolve()),
  };
  return { profiles: new Profiles(st, { accounts: a.client, avatars: v.client, cache }), st, calls: a.calls, avatarCalls: v.calls, cache };
}

const profilesOf = (req: { accountIds: string[] }) => ({
  profiles: req.accountIds.map((accountId) => ({ accountId, username: accountId.slice(-4), displayName: "" })),
});

describe("Profiles", () => {
  it("restores the cached profiles", async () => {
    const { profiles, st } = setup({});
    await profiles.restore();
    expect(st.s.profiles).toEqual({ [BOB]: bobProfile });
  });

  it("fetches only the profiles it lacks (not ours), all of them on refresh, and caches them", async () => {
    const { profiles, st, calls, cache } = setup({ getProfiles: profilesOf as never }, {}, state({ profiles: { [BOB]: bobProfile } }));
    await profiles.load([ME, BOB, CAROL, CAROL]);
    expect(calls).toEqual([["getProfiles", { accountIds: [CAROL] }]]);
    expect(cache.save).toHaveBeenLastCalledWith(st.s.profiles);
    await profiles.load([ME, BOB, CAROL], true);
    expect(calls[1]).toEqual(["getProfiles", { accountIds: [BOB, CAROL] }]);
    expect(st.s.profiles[BOB]?.displayName).toBe("");
  });

  it("asks for at most 1,000 profiles at a time", async () => {
    const { profiles, calls } = setup({ getProfiles: profilesOf as never });
    const many = Array.from({ length: 1001 }, (_, i) => `id-${i}`);
    await profiles.load(many);
    expect(calls.map(([, r]) => (r as { accountIds: string[] }).accountIds.length)).toEqual([1000, 1]);
  });

  it("looks a username up as typed (@, spaces, capitals)", async () => {
    const { profiles, st, calls } = setup({
      lookupAccount: (() => ({ profile: { accountId: BOB, username: "bob", displayName: "Bob" } })) as never,
    });
    await expect(profiles.lookUp(" @Bob ")).resolves.toMatchObject({ accountId: BOB });
    expect(calls[0]).toEqual(["lookupAccount", { username: "bob" }]);
    expect(st.s.profiles[BOB]?.displayName).toBe("Bob");
  });

  it("our new picture and name show at once", async () => {
    const { profiles, st } = setup(
      { updateProfile: (() => ({ account: { displayName: "New", username: "me" } })) as never },
      { setMyAvatar: (() => ({ avatar: avatar("m5", 5n) })) as never },
    );
    await profiles.setMyAvatar(new Blob([new Uint8Array([1])]));
    expect(st.s.me).toMatchObject({ avatarId: "m5", avatarVersion: 5 });
    await profiles.updateProfile("  New ");
    expect(st.s.me).toMatchObject({ displayName: "New", username: "me" });
  });

  it("an avatar event of someone unknown fetches their profile; of someone known is applied and cached", async () => {
    const { profiles, st, calls, cache } = setup({ getProfiles: profilesOf as never }, {}, state({ profiles: { [BOB]: bobProfile } }));
    profiles.applyAvatar({ case: "accountId", value: CAROL }, avatar("c1", 1n));
    await vi.waitFor(() => expect(st.s.profiles[CAROL]).toBeDefined());
    expect(calls).toEqual([["getProfiles", { accountIds: [CAROL] }]]);
    expect(st.types()).not.toContain("avatar");
    cache.save.mockClear();
    profiles.applyAvatar({ case: "accountId", value: BOB }, avatar("b2", 2n));
    expect(st.s.profiles[BOB]?.avatarId).toBe("b2");
    expect(cache.save).toHaveBeenCalledWith(st.s.profiles);
    cache.save.mockClear();
    profiles.applyAvatar({ case: "accountId", value: BOB }, avatar("b1", 1n));
    expect(cache.save).not.toHaveBeenCalled();
  });
});
