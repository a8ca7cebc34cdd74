// push.spec.ts — "Notify me when the app is closed" (Web Push, src/notify/push.ts) where the
// browser cannot reach its push service: the state of a LAN without internet, and of this
// test's Chromium (Debian's build has no push service to register with). Turning the switch on
// asks for the permission, fails to subscribe and says so plainly, in English and Russian; the
// switch stays off and the open tab's notifications stay available. The server side of push
// (encryption, VAPID, pacing, SSRF rules) is tested against an independent implementation in
// e2e-tests/tests/e2e/push.rs.
import { expect, shoot, signUp, stamp, test } from "./helpers";

const pushSwitch = "Notify me when the app is closed";
const unavailable = "Push notifications are unavailable here; you'll be notified while KitsuLAN is open in a tab.";
const unavailableRu =
  "Push-уведомления здесь недоступны; уведомления будут приходить, пока KitsuLAN открыт во вкладке.";
const systemSwitch = "Show system notifications while KitsuLAN is in the background";

test("push: without a reachable push service the switch says so, and the tab's notifications stay", async ({ browser }) => {
  const bob = await signUp(browser, `bob-push-${stamp}`, "Bob", async (context) => {
    await context.grantPermissions(["notifications"]);
  });
  await bob.getByRole("button", { name: "Settings" }).click();
  const settings = bob.getByRole("dialog", { name: "Settings" });
  const push = settings.getByRole("checkbox", { name: pushSwitch });
  await expect(push).toBeEnabled();
  await expect(push).not.toBeChecked();
  await expect(push).toHaveAccessibleDescription(/never who wrote or what/);

  await push.click();
  const alert = settings.getByRole("alert").filter({ hasText: unavailable });
  await expect(alert).toBeVisible();
  await expect(push).not.toBeChecked();
  await expect(push).toBeEnabled();
  await expect(push).toHaveAccessibleDescription(unavailable);
  // The browser holds no half-made subscription.
  expect(
    await bob.evaluate(async () => {
      const reg = await navigator.serviceWorker.ready;
      return (await reg.pushManager.getSubscription()) === null;
    }),
  ).toBe(true);
  // The tab's own notifications still work here.
  await expect(settings.getByRole("checkbox", { name: systemSwitch })).toBeEnabled();
  await alert.scrollIntoViewIfNeeded();
  await shoot(bob, "push-unavailable");

  // In Russian (the dialog's name changes with the language).
  await settings.getByLabel("Language").selectOption("ru");
  const nastroyki = bob.getByRole("dialog", { name: "Настройки" });
  const alertRu = nastroyki.getByRole("alert").filter({ hasText: unavailableRu });
  await expect(alertRu).toBeVisible();
  const pushRu = nastroyki.getByRole("checkbox", { name: "Уведомлять, когда приложение закрыто" });
  await expect(pushRu).toBeVisible();
  await bob.setViewportSize({ width: 360, height: 740 });
  await alertRu.scrollIntoViewIfNeeded();
  await bob.screenshot({ path: "e2e/artifacts/push-unavailable-ru-360.png" });
  await nastroyki.getByLabel("Язык").selectOption("en");
});
