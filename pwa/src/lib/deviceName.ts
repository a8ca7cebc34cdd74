// deviceName.ts — the name a new device gets when the person does not type one: the browser with
// its major version and the OS with its version where the browser tells it, e.g.
// "Chrome 156 on Windows 11", "Firefox 140 on Linux", "Safari 18 on iOS 18.2". Chromium
// browsers tell it through navigator.userAgentData (the OS version only through
// getHighEntropyValues, which may be refused); the others through the user-agent string.

/** What navigator.userAgentData says (the parts used here). */
export interface UaData {
  brands: { brand: string; version: string }[];
  platform: string;
  platformVersion?: string | undefined;
}

interface NavigatorUaData {
  brands: { brand: string; version: string }[];
  platform: string;
  getHighEntropyValues?: (hints: string[]) => Promise<{ platformVersion?: string }>;
}

const MAX = 64;

/** The browser from userAgentData brands (a real brand before "Chromium", skipping the GREASE
 * ones such as "Not_A Brand"). */
function brandOf(data: UaData): string | null {
  const real = data.brands.filter((b) => !/not.?a.?brand/i.test(b.brand));
  const pick = real.find((b) => b.brand !== "Chromium") ?? real[0];
  if (!pick) return null;
  const name = pick.brand.replace(/^Google /, "").replace(/^Microsoft /, "");
  return `${name} ${pick.version.split(".")[0] ?? ""}`.trim();
}

/** The OS with its version from userAgentData. */
function osOf(data: UaData): string {
  const platform = data.platform;
  const v = data.platformVersion ?? "";
  if (platform === "Windows") {
    // Windows 11 reports platformVersion 13 and above; 10 reports 1 to 10.
    const major = Number(v.split(".")[0]);
    if (!v || Number.isNaN(major)) return "Windows";
    return major >= 13 ? "Windows 11" : major > 0 ? "Windows 10" : "Windows";
  }
  if (platform === "macOS" || platform === "Android" || platform === "Chrome OS" || platform === "ChromeOS") {
    const parts = v.split(".");
    const short = parts[1] && parts[1] !== "0" ? `${parts[0]}.${parts[1]}` : (parts[0] ?? "");
    return short && short !== "0" ? `${platform} ${short}` : platform;
  }
  return platform; // Linux and others: the version is not meaningful (or not given).
}

/** The browser and OS from a user-agent string. */
export function fromUserAgent(ua: string): string {
  const version = (re: RegExp) => re.exec(ua)?.[1]?.split(".")[0];
  let browser = "Browser";
  if (/Firefox\/(\d+)/.test(ua)) browser = `Firefox ${version(/Firefox\/(\d+)/) ?? ""}`;
  else if (/Edg\/(\d+)/.test(ua)) browser = `Edge ${version(/Edg\/(\d+)/) ?? ""}`;
  else if (/OPR\/(\d+)/.test(ua)) browser = `Opera ${version(/OPR\/(\d+)/) ?? ""}`;
  else if (/Chrom(?:e|ium)\/(\d+)/.test(ua)) browser = `${/Chromium\//.test(ua) ? "Chromium" : "Chrome"} ${version(/Chrom(?:e|ium)\/(\d+)/) ?? ""}`;
  else if (/Version\/([\d.]+).*Safari\//.test(ua)) browser = `Safari ${version(/Version\/(\d+)/) ?? ""}`;
  browser = browser.trim();

  let os = "";
  const dotted = (s: string | undefined) => (s ?? "").replace(/_/g, ".").split(".").slice(0, 2).join(".").replace(/\.0$/, "");
  const android = /Android ([\d.]+)/.exec(ua);
  const ios = /(?:iPhone|iPad|iPod).*? OS ([\d_]+)/.exec(ua);
  const mac = /Mac OS X ([\d_.]+)/.exec(ua);
  if (android) os = `Android ${dotted(android[1])}`;
  else if (/Android/.test(ua)) os = "Android";
  else if (ios) os = `iOS ${dotted(ios[1])}`;
  else if (/Windows NT 10/.test(ua)) os = "Windows"; // 10 and 11 both say 10 here
  else if (/Windows/.test(ua)) os = "Windows";
  else if (/CrOS/.test(ua)) os = "ChromeOS";
  else if (mac) os = "macOS"; // frozen at 10.15 by every browser: not worth showing
  else if (/Linux/.test(ua)) os = "Linux";
  return os ? `${browser} on ${os}` : browser;
}

/** The name from userAgentData (when the browser has it). */
export function fromUaData(data: UaData): string | null {
  const browser = brandOf(data);
  if (!browser) return null;
  const os = osOf(data);
  return os ? `${browser} on ${os}` : browser;
}

/** This browser's default device name (asks for the OS version where it can, within 1 s). */
export async function defaultDeviceName(): Promise<string> {
  const ua = navigator.userAgent;
  const nav = (navigator as Navigator & { userAgentData?: NavigatorUaData }).userAgentData;
  if (!nav || nav.brands.length === 0) return fromUserAgent(ua).slice(0, MAX);
  let platformVersion: string | undefined;
  try {
    const high = await Promise.race([
      nav.getHighEntropyValues?.(["platformVersion"]),
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 1000)),
    ]);
    platformVersion = high?.platformVersion;
  } catch {
    // refused: no version
  }
  const name = fromUaData({ brands: nav.brands, platform: nav.platform, platformVersion }) ?? fromUserAgent(ua);
  return name.slice(0, MAX);
}
