// restart.spec.ts — the server is stopped mid-conversation and started again (same binary,
// data dir and port, through e2e/run.mjs): both clients show that they are reconnecting, come
// back on their own, and carry on exchanging messages both ways.
import { acceptRequest, bubble, expect, expectNoUndecryptable, openDirect, send, server, signUp, stamp, status, test } from "./helpers";

test("the server restarts mid-conversation and the clients carry on", async ({ browser }) => {
  const alice = await signUp(browser, `alice-rs-${stamp}`, "Alice");
  const bob = await signUp(browser, `bob-rs-${stamp}`, "Bob");
  await openDirect(alice, `bob-rs-${stamp}`);
  await send(alice, "before the restart");
  await acceptRequest(bob, /Alice/);
  await expect(bubble(bob, "before the restart")).toBeVisible();

  await server("stop");
  for (const page of [alice, bob]) await expect(status(page)).toHaveText("Offline, reconnecting…");
  await server("start");
  for (const page of [alice, bob]) await expect(status(page)).toHaveText("Connected", { timeout: 30_000 });

  await send(alice, "after the restart");
  await expect(bubble(bob, "after the restart")).toBeVisible();
  await send(bob, "still here");
  await expect(bubble(alice, "still here")).toBeVisible();
  await expect(bubble(alice, "after the restart").getByRole("img", { name: "Read" })).toBeVisible();
  // No message was lost to a missing key across the restart (Settings → Diagnostics).
  for (const page of [alice, bob]) await expectNoUndecryptable(page);
});
