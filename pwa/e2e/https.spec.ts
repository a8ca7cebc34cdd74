// https.spec.ts — the app over HTTPS with the server's local CA (KITSULAN_TLS=local), as at a LAN
// party: the server is restarted with HTTPS on, Chromium trusts ONLY that CA (a temporary HOME
// whose NSS database, made with certutil from Debian's libnss3-tools, holds it; no
// --ignore-certificate-errors) and opens https://kitsulan.test:<port> (the name resolved to the
// test server by --host-resolver-rules and put in the certificate by KITSULAN_TLS_NAMES). The page
// is a secure context: no warning banner, the service worker registers and controls the page,
// sign-up works, and a video call between two browsers connects with fake media. A browser
// without the CA refuses the same URL, and plain HTTP from loopback still answers.
// The party screen over HTTPS: the server's name, a QR code of the https origin, and the "Trust
// this server" block whose fingerprint is the SHA-256 of the DER the page fetches at /ca.crt.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "@playwright/test";
import { launchOptions } from "../playwright.config";
import {
  acceptRequest,
  createAccount,
  decodePng,
  expect,
  guardHosts,
  openDirect,
  password,
  qrPng,
  send,
  server,
  shoot,
  stamp,
  status,
  test,
} from "./helpers";

const loopback = process.env.KITSULAN_E2E_URL ?? "http://127.0.0.1:8080";
const port = new URL(loopback).port;
const secure = `https://kitsulan.test:${port}`;
/** The server's name while HTTPS is on (the party screen shows it, not the app's name). */
const serverName = "Kitsu Party";

// Every request must stay on the HTTPS origin (helpers' hostGuard compares with baseURL).
test.use({ baseURL: secure });

/** A temporary HOME whose NSS database (what Chromium on Linux trusts besides its own roots)
 * holds `caPem` and nothing else of ours. */
function homeTrusting(caPem: string): string {
  const home = mkdtempSync(join(tmpdir(), "kitsulan-https-home-"));
  const db = join(home, ".pki/nssdb");
  mkdirSync(db, { recursive: true });
  const caFile = join(home, "ca.pem");
  writeFileSync(caFile, caPem);
  try {
    execFileSync("certutil", ["-d", `sql:${db}`, "-N", "--empty-password"]);
    execFileSync("certutil", ["-d", `sql:${db}`, "-A", "-t", "C,,", "-n", "KitsuLAN local CA", "-i", caFile]);
  } catch (err) {
    throw new Error(`certutil (Debian's libnss3-tools) is needed to trust the local CA: ${String(err)}`);
  }
  return home;
}

async function launch(home: string): Promise<Browser> {
  return chromium.launch({
    ...launchOptions,
    args: [
      ...launchOptions.args,
      `--host-resolver-rules=MAP kitsulan.test 127.0.0.1`,
      "--use-fake-device-for-media-stream",
      "--use-fake-ui-for-media-stream",
    ],
    env: { ...process.env, HOME: home },
  });
}

/** A fresh device (browser context) on the HTTPS page. */
async function device(browser: Browser): Promise<Page> {
  const context = await browser.newContext({ baseURL: secure, viewport: { width: 1280, height: 800 } });
  guardHosts(context);
  const page = await context.newPage();
  page.on("dialog", (d) => {
    throw new Error(`unexpected dialog: ${d.message()}`);
  });
  await page.goto(`${secure}/`);
  return page;
}

async function signUpHere(browser: Browser, username: string, displayName: string): Promise<Page> {
  const page = await device(browser);
  await createAccount(page, username, displayName);
  await expect(page.getByRole("button", { name: "New conversation" })).toBeVisible();
  await expect(status(page)).toHaveText("Connected");
  return page;
}

async function alwaysRelay(page: Page) {
  await page.getByRole("button", { name: "Settings" }).click();
  const settings = page.getByRole("dialog", { name: "Settings" });
  await settings.getByRole("checkbox", { name: /Always relay calls/ }).check();
  await settings.getByRole("button", { name: "Close settings" }).click();
}

function framesDecoded(page: Page, peer: string): Promise<number> {
  return page
    .getByRole("region", { name: "Call statistics" })
    .getByRole("table", { name: `Statistics for ${peer}` })
    .getByRole("row", { name: /Video frames decoded/ })
    .getByRole("cell")
    .textContent()
    .then((text) => Number(text ?? "0"));
}

let home = "";
let browser: Browser | null = null;
let httpsOn = "";

/** Restarts the server with HTTPS from its local CA (once per worker): the CA's PEM, fetched
 * as a phone does before it trusts HTTPS (here over loopback). */
async function startHttps(): Promise<string> {
  if (!httpsOn) {
    await server("stop");
    await server("start", {
      KITSULAN_TLS: "local",
      KITSULAN_TLS_NAMES: "kitsulan.test",
      KITSULAN_SERVER_NAME: serverName,
    });
    httpsOn = await (await fetch(`${loopback}/ca.pem`)).text();
    expect(httpsOn).toContain("-----BEGIN CERTIFICATE-----");
  }
  return httpsOn;
}

/** A Chromium trusting the CA (`caPem`) alone, shared by the tests of this file. */
async function trustingBrowser(caPem: string): Promise<Browser> {
  if (!browser) {
    home = homeTrusting(caPem);
    browser = await launch(home);
  }
  return browser;
}

test.afterAll(async () => {
  await browser?.close();
  if (home) rmSync(home, { recursive: true, force: true });
  // Back to plain HTTP for the specs after this one.
  await server("stop");
  await server("start");
});

test("over HTTPS with the local CA: secure context, service worker, sign-up and a call", async () => {
  const caPem = await startHttps();

  // A browser without the CA refuses the page: the trust below comes from the CA alone.
  const stranger = await launch(mkdtempSync(join(tmpdir(), "kitsulan-https-empty-")));
  const strangerPage = await stranger.newPage();
  const refused = await strangerPage.goto(`${secure}/`).then(
    () => "loaded",
    (err: Error) => err.message,
  );
  expect(refused).toMatch(/ERR_CERT_AUTHORITY_INVALID/);
  await stranger.close();

  const alice = await device(await trustingBrowser(caPem));
  expect(await alice.evaluate(() => window.isSecureContext && location.protocol)).toBe("https:");
  await expect(alice.getByRole("region", { name: "Connection warning" })).toHaveCount(0);
  // The service worker registers and takes the page.
  await expect
    .poll(() => alice.evaluate(async () => (await navigator.serviceWorker.getRegistration())?.active?.state ?? "none"))
    .toBe("activated");
  await alice.reload();
  await expect.poll(() => alice.evaluate(() => navigator.serviceWorker.controller !== null)).toBe(true);
  await alice.context().close();

  // Two people sign up over HTTPS and call each other (fake camera and microphone).
  const trusting = await trustingBrowser(caPem);
  const a = await signUpHere(trusting, `alice-https-${stamp}`, "Alice");
  const b = await signUpHere(trusting, `bob-https-${stamp}`, "Bob");
  await alwaysRelay(a);
  await alwaysRelay(b);
  await openDirect(a, `bob-https-${stamp}`);
  await send(a, "Calling over HTTPS");
  await acceptRequest(b, /Alice/);
  await a.getByRole("button", { name: "Video call" }).click();
  const incoming = b.getByRole("alertdialog", { name: "Incoming video call" });
  await expect(incoming).toBeVisible();
  await incoming.getByRole("button", { name: "Answer with video" }).click();
  for (const [page, peer] of [
    [a, "Bob"],
    [b, "Alice"],
  ] as const) {
    const call = page.getByRole("dialog", { name: `Call: ${peer}` });
    await expect(call.getByRole("timer", { name: "Call duration" })).toBeVisible();
    await call.getByRole("button", { name: "Call statistics" }).click();
    await expect.poll(() => framesDecoded(page, peer), { timeout: 30_000 }).toBeGreaterThan(0);
  }
  await shoot(a, "https-call");
  await a.getByRole("button", { name: "Hang up" }).click();
  await expect(b.getByRole("dialog", { name: "Call ended" })).toBeVisible();

  // Plain HTTP on loopback still answers (tools, health checks).
  expect((await fetch(`${loopback}/readyz`)).status).toBe(200);
});

test("the party screen over HTTPS: the https address as a QR code and the CA to trust, with its fingerprint", async () => {
  const caPem = await startHttps();
  const carol = await signUpHere(await trustingBrowser(caPem), `carol-https-${stamp}`, "Carol");
  await carol.goto(`${secure}/party`);
  await expect(carol.getByRole("heading", { level: 1, name: serverName })).toBeVisible();
  await expect(carol.getByRole("heading", { name: /^Online now/ })).toBeVisible();

  // The address QR code is the https origin, at both widths.
  const address = carol.getByRole("img", { name: `QR code of ${secure}` });
  expect(decodePng(await qrPng(address))).toBe(secure);
  await expect(carol.getByTestId("party-address")).toHaveText(`kitsulan.test:${port}`);

  // The CA the page downloads at /ca.crt (same origin, over the HTTPS the browser trusts; Node's
  // own request context would trust neither the CA nor the name), and its SHA-256.
  const fetched = await carol.evaluate(async () => {
    const res = await fetch("/ca.crt");
    const bytes = [...new Uint8Array(await res.arrayBuffer())];
    return { status: res.status, type: res.headers.get("content-type"), bytes };
  });
  expect([fetched.status, fetched.type]).toEqual([200, "application/x-x509-ca-cert"]);
  const der = Buffer.from(fetched.bytes);
  const sha256 = createHash("sha256").update(der).digest("hex");
  // The same certificate as the PEM the browser trusts.
  expect(der.toString("base64")).toBe(caPem.replace(/-----[^-]+-----|\s/g, ""));

  // "Trust this server": the fingerprint shown is that SHA-256.
  const trust = carol.getByRole("region", { name: "Trust this server" });
  await expect(trust).toBeVisible();
  const fingerprint = trust.getByTestId("party-fingerprint");
  await expect(fingerprint).toBeVisible();
  const plain = (text: string | null) => (text ?? "").replace(/[^0-9a-f]/gi, "").toLowerCase();
  expect(plain(await fingerprint.textContent())).toBe(sha256);
  expect(plain(await fingerprint.getAttribute("aria-label"))).toBe(sha256);

  // The link and the QR code lead to /ca.crt of this origin.
  const link = trust.getByRole("link", { name: `kitsulan.test:${port}/ca.crt` });
  await expect(link).toBeVisible();
  expect(await link.evaluate((a) => (a as HTMLAnchorElement).href)).toBe(`${secure}/ca.crt`);
  const caQr = trust.getByRole("img", { name: "QR code of the certificate authority download" });
  expect(decodePng(await qrPng(caQr))).toBe(`${secure}/ca.crt`);

  await shoot(carol, "https-party");
  // On a phone-sized screen nothing overflows and both codes still read.
  await carol.setViewportSize({ width: 360, height: 740 });
  expect(await carol.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
  expect(decodePng(await qrPng(address))).toBe(secure);
  expect(decodePng(await qrPng(caQr))).toBe(`${secure}/ca.crt`);
  await carol.screenshot({ path: "e2e/artifacts/https-party-full-360.png", fullPage: true });
  await carol.setViewportSize({ width: 1280, height: 800 });
  await carol.screenshot({ path: "e2e/artifacts/https-party-full-1280.png", fullPage: true });
});
