// calls.spec.ts — a video call between two browsers through the real server: Alice calls Bob,
// Bob's incoming-call screen answers with video, and both receive each other's video through
// the server's embedded TURN relay ("Always relay calls" on). Media is Chromium's fake camera
// and microphone; that frames arrive and decode is read from the call's own statistics panel
// (RTCPeerConnection.getStats()), and the remote <video> element is checked to be playing.
// The SDP and ICE candidates cross the gateway only encrypted (Olm, to the receiving device).
// Then Alice hangs up and both see the call ended.
import type { BrowserContext, Page } from "@playwright/test";
import { launchOptions } from "../playwright.config";
import { acceptRequest, expect, openDirect, send, shoot, signUp, stamp, test } from "./helpers";

test.use({
  launchOptions: {
    ...launchOptions,
    args: [...launchOptions.args, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"],
  },
});

/** Keeps every frame a page sends on its WebSockets (the gateway), as text where it is text. */
function recordSent(into: string[]) {
  return async (context: BrowserContext) => {
    context.on("page", (page) =>
      page.on("websocket", (ws) =>
        ws.on("framesent", (f) => into.push(typeof f.payload === "string" ? f.payload : f.payload.toString("latin1"))),
      ),
    );
  };
}

async function alwaysRelay(page: Page) {
  await page.getByRole("button", { name: "Settings" }).click();
  const settings = page.getByRole("dialog", { name: "Settings" });
  await settings.getByRole("checkbox", { name: /Always relay calls/ }).check();
  await settings.getByRole("button", { name: "Close settings" }).click();
}

function statsRow(page: Page, peer: string, row: RegExp) {
  return page
    .getByRole("region", { name: "Call statistics" })
    .getByRole("table", { name: `Statistics for ${peer}` })
    .getByRole("row", { name: row })
    .getByRole("cell");
}

async function framesDecoded(page: Page, peer: string): Promise<number> {
  return Number((await statsRow(page, peer, /Video frames decoded/).textContent()) ?? "0");
}

/** The remote video tile is showing moving pictures: playing, with a size, time advancing. */
async function expectPlaying(page: Page, peer: string) {
  const video = page.getByRole("list", { name: "Participants" }).getByRole("listitem", { name: peer }).locator("video");
  await expect
    .poll(() => video.evaluate((v: HTMLVideoElement) => !v.paused && v.readyState >= 2 && v.videoWidth > 0))
    .toBe(true);
  const t0 = await video.evaluate((v: HTMLVideoElement) => v.currentTime);
  await expect.poll(() => video.evaluate((v: HTMLVideoElement) => v.currentTime)).toBeGreaterThan(t0);
}

test("a video call: ring, answer, video both ways through the relay, hang up", async ({ browser }) => {
  const aliceSent: string[] = [];
  const bobSent: string[] = [];
  const alice = await signUp(browser, `alice-c-${stamp}`, "Alice", recordSent(aliceSent));
  const bob = await signUp(browser, `bob-c-${stamp}`, "Bob", recordSent(bobSent));
  await alwaysRelay(alice);
  await alwaysRelay(bob);

  // A request does not ring: Alice writes first, and Bob accepts.
  await openDirect(alice, `bob-c-${stamp}`);
  await send(alice, "Can I call you?");
  await acceptRequest(bob, /Alice/);
  await alice.getByRole("button", { name: "Video call" }).click();
  await expect(alice.getByRole("dialog", { name: "Bob" })).toBeVisible();

  // Bob's device rings; Alice sees that it does.
  const incoming = bob.getByRole("alertdialog", { name: "Incoming video call" });
  await expect(incoming).toBeVisible();
  await expect(incoming).toContainText("Alice");
  await expect(alice.getByRole("dialog", { name: "Bob" }).getByRole("status")).toHaveText("Ringing…");
  await expect(incoming.getByRole("button", { name: "Answer with video" })).toBeFocused();
  await shoot(bob, "call-incoming");
  await incoming.getByRole("button", { name: "Answer with video" }).click();

  // Both are in the call, each with the other's tile; the timer runs once media connects.
  for (const [page, peer] of [
    [alice, "Bob"],
    [bob, "Alice"],
  ] as const) {
    const call = page.getByRole("dialog", { name: `Call: ${peer}` });
    await expect(call).toBeVisible();
    await expect(call.getByRole("timer", { name: "Call duration" })).toBeVisible();
    await call.getByRole("button", { name: "Call statistics" }).click();
    await expect(statsRow(page, peer, /Connection/)).toHaveText("through the relay");
  }

  // Frames arrive and decode on both sides, and keep coming.
  const seen: Record<string, number[]> = {};
  for (const [page, peer, who] of [
    [alice, "Bob", "alice"],
    [bob, "Alice", "bob"],
  ] as const) {
    await expect.poll(() => framesDecoded(page, peer), { timeout: 30_000 }).toBeGreaterThan(0);
    const first = await framesDecoded(page, peer);
    await expect.poll(() => framesDecoded(page, peer)).toBeGreaterThan(first + 10);
    seen[who] = [first, await framesDecoded(page, peer)];
    await expectPlaying(page, peer);
  }
  console.log(`framesDecoded (first, later): ${JSON.stringify(seen)}`);
  await shoot(alice, "call-in-call");

  // The signalling carried SDP and candidates, never readable by the server.
  for (const sent of [aliceSent, bobSent]) {
    expect(sent.some((f) => f.length > 1000)).toBe(true); // an encrypted offer or answer
    for (const text of ["a=fingerprint", "a=ice-ufrag", "candidate:", "v=0\r\n"]) {
      expect(sent.some((f) => f.includes(text))).toBe(false);
    }
  }

  // Bob mutes and turns his camera off: Alice's tile of Bob says so (the call's data channel).
  const bobCall = bob.getByRole("dialog", { name: "Call: Alice" });
  await bobCall.getByRole("button", { name: "Mute microphone" }).click();
  await expect(bobCall.getByRole("button", { name: "Mute microphone" })).toHaveAttribute("aria-pressed", "true");
  await bobCall.getByRole("button", { name: "Camera", exact: true }).click();
  await expect(bobCall.getByRole("button", { name: "Camera", exact: true })).toHaveAttribute("aria-pressed", "false");
  const bobTile = alice.getByRole("list", { name: "Participants" }).getByRole("listitem", { name: "Bob" });
  await expect(bobTile).toContainText("muted");
  await expect(bobTile).toContainText("camera off");

  // Alice shares her screen (getDisplayMedia replaces the camera track): Bob keeps decoding.
  const aliceCall = alice.getByRole("dialog", { name: "Call: Bob" });
  await aliceCall.getByRole("button", { name: "Share screen" }).click();
  await expect(aliceCall.getByRole("button", { name: "Share screen" })).toHaveAttribute("aria-pressed", "true");
  const before = await framesDecoded(bob, "Alice");
  await expect.poll(() => framesDecoded(bob, "Alice")).toBeGreaterThan(before + 10);

  // Alice hangs up: the call ends for both.
  await alice.getByRole("button", { name: "Hang up" }).click();
  for (const page of [alice, bob]) {
    await expect(page.getByRole("dialog", { name: "Call ended" })).toBeVisible();
    await expect(page.getByRole("dialog", { name: "Call ended" }).getByRole("status")).toHaveText(
      "The call was hung up.",
    );
  }
  await expect(bob.getByRole("list", { name: "Participants" })).toHaveCount(0);
});

test("a group call: three devices in a mesh, busy, leave and join again", async ({ browser }) => {
  const alice = await signUp(browser, `alice-gc-${stamp}`, "Alice");
  const bob = await signUp(browser, `bob-gc-${stamp}`, "Bob");
  const carol = await signUp(browser, `carol-gc-${stamp}`, "Carol");
  const dave = await signUp(browser, `dave-gc-${stamp}`, "Dave");
  // Dave and Bob know each other already (Bob accepted Dave's request): his call will ring.
  await openDirect(dave, `bob-gc-${stamp}`);
  await send(dave, "Hi Bob, it's Dave");
  await acceptRequest(bob, /Dave/);
  // Bob talks with push-to-talk.
  await bob.getByRole("button", { name: "Settings" }).click();
  await bob.getByRole("dialog", { name: "Settings" }).getByRole("checkbox", { name: "Push-to-talk in calls" }).check();
  await bob.getByRole("dialog", { name: "Settings" }).getByRole("button", { name: "Close settings" }).click();

  await alice.getByRole("button", { name: "New conversation" }).click();
  const dialog = alice.getByRole("dialog", { name: "New conversation" });
  await dialog.getByRole("radio", { name: "Group" }).check();
  await dialog.getByRole("textbox", { name: "Group name" }).fill("Standup");
  await dialog.getByRole("textbox", { name: /Members' usernames/ }).fill(`bob-gc-${stamp}, carol-gc-${stamp}`);
  await dialog.getByRole("button", { name: "Create group" }).click();
  await expect(alice.getByRole("heading", { name: "Standup" })).toBeVisible();
  for (const page of [bob, carol]) await acceptRequest(page, /Standup/);

  // An audio call (default ICE: direct where it can be): both others ring, both answer.
  await alice.getByRole("button", { name: "Audio call" }).click();
  for (const page of [bob, carol]) {
    const incoming = page.getByRole("alertdialog", { name: "Incoming call" });
    await expect(incoming).toContainText("Alice in Standup");
    await incoming.getByRole("button", { name: "Answer" }).click();
  }
  const tiles = (page: Page) => page.getByRole("list", { name: "Participants" }).getByRole("listitem");
  const everyone = [
    [alice, ["Bob", "Carol"]],
    [bob, ["Alice", "Carol"]],
    [carol, ["Alice", "Bob"]],
  ] as const;
  for (const [page, others] of everyone) {
    await expect(tiles(page)).toHaveCount(3);
    await page.getByRole("button", { name: "Call statistics" }).click();
    for (const other of others) {
      await expect(tiles(page).filter({ hasText: other })).toContainText("camera off");
      await expect
        .poll(async () => Number(await statsRow(page, other, /Audio packets received/).textContent()))
        .toBeGreaterThan(0);
    }
  }
  await alice.getByRole("button", { name: "Call statistics" }).click();
  await shoot(alice, "call-group");

  // Push-to-talk: Bob is muted for the others until he holds Space on the Talk button, or
  // presses the button with the mouse.
  const bobAtAlice = tiles(alice).filter({ hasText: "Bob" });
  const talk = bob.getByRole("button", { name: "Hold to talk" });
  await expect(bobAtAlice).toContainText("muted");
  await talk.focus();
  await bob.keyboard.down("Space");
  await expect(talk).toHaveAttribute("aria-pressed", "true");
  await expect(bobAtAlice).not.toContainText("muted");
  await bob.keyboard.up("Space");
  await expect(bobAtAlice).toContainText("muted");
  await talk.hover();
  await bob.mouse.down();
  await expect(bobAtAlice).not.toContainText("muted");
  await bob.mouse.up();
  await expect(bobAtAlice).toContainText("muted");

  // Dave calls Bob, who is in the group call: busy.
  await dave.getByRole("button", { name: "Audio call" }).click();
  await expect(dave.getByRole("dialog", { name: "Call ended" }).getByRole("status")).toHaveText(
    "They are in another call.",
  );
  await expect(tiles(bob)).toHaveCount(3);

  // Carol leaves: her tile goes away for the others, whose call goes on.
  await carol.getByRole("button", { name: "Hang up" }).click();
  await expect(carol.getByRole("dialog", { name: "Call ended" })).toBeVisible();
  for (const page of [alice, bob]) {
    await expect(tiles(page)).toHaveCount(2);
    await expect(tiles(page).filter({ hasText: "Carol" })).toHaveCount(0);
  }

  // She joins again from the conversation's header.
  await carol.getByRole("dialog", { name: "Call ended" }).getByRole("button", { name: "Close" }).click();
  await carol.getByRole("button", { name: /Standup/ }).click();
  await carol.getByRole("button", { name: "Join call", exact: true }).click();
  for (const page of [alice, bob, carol]) await expect(tiles(page)).toHaveCount(3);

  // Alice leaves, then Bob: with one device left the call ends for Carol too.
  await alice.getByRole("button", { name: "Hang up" }).click();
  for (const page of [bob, carol]) await expect(tiles(page)).toHaveCount(2);
  await bob.getByRole("button", { name: "Hang up" }).click();
  await expect(carol.getByRole("dialog", { name: "Call ended" }).getByRole("status")).toHaveText(
    "The call was hung up.",
  );
});
