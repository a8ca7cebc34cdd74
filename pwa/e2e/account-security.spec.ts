// account-security.spec.ts — Settings → "Password and email": changing the password asks for the
// current one (a copied session alone cannot do it), and a new password signs the account's
// other devices out unless the person keeps them.
import { expect, newDevice, password, shoot, signUp, stamp, test } from "./helpers";

test("a new password needs the current one and signs the other devices out", async ({ browser }) => {
  const username = `alice-pw-${stamp}`;
  const alice = await signUp(browser, username, "Alice");

  // A second device of Alice's, signed in with the password.
  const phone = await newDevice(browser);
  await phone.getByRole("tab", { name: "Sign in" }).click();
  await phone.getByLabel("Username").fill(username);
  await phone.getByLabel("Password").fill(password);
  await phone.getByRole("button", { name: "Sign in" }).click();
  await expect(phone.getByRole("button", { name: "Settings" })).toBeVisible();

  await alice.getByRole("button", { name: "Settings" }).click();
  const form = alice.getByRole("form", { name: "Change password" });
  await expect(form).toBeVisible();
  await expect(form.getByRole("button", { name: "Change password" })).toBeDisabled();

  // The wrong current password is refused, and nothing changes.
  await form.getByLabel("Current password").fill("not my password");
  await form.getByLabel("New password").fill("a much better password");
  await form.getByRole("button", { name: "Change password" }).click();
  await expect(form.getByRole("alert")).toHaveText("The current password is wrong.");
  await expect(phone.getByRole("button", { name: "Settings" })).toBeVisible();
  await shoot(alice, "settings-password");

  // The right one: the password changes and the phone is signed out (its data erased).
  await form.getByLabel("Current password").fill(password);
  await form.getByLabel("New password").fill("a much better password");
  await expect(form.getByRole("checkbox", { name: "Keep my other devices signed in" })).not.toBeChecked();
  await form.getByRole("button", { name: "Change password" }).click();
  await expect(form.getByRole("status")).toHaveText("Password changed. Other devices signed out: 1.");
  await expect(phone.getByRole("alert")).toHaveText(
    "This device was signed out from another device, and its local data was erased.",
  );
  await expect(phone.getByRole("tab", { name: "Sign in" })).toBeVisible();

  // The old password no longer signs in; the new one does.
  await phone.getByLabel("Username").fill(username);
  await phone.getByLabel("Password").fill(password);
  await phone.getByRole("button", { name: "Sign in" }).click();
  await expect(phone.getByRole("alert").filter({ hasText: "Wrong username or password." })).toBeVisible();
  await phone.getByLabel("Password").fill("a much better password");
  await phone.getByRole("button", { name: "Sign in" }).click();
  await expect(phone.getByRole("button", { name: "Settings" })).toBeVisible();
});
