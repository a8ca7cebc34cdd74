import { describe, expect, it } from "vitest";
import { fromUaData, fromUserAgent } from "./deviceName";

describe("device names", () => {
  it("reads userAgentData: the real brand, its major version, the OS version", () => {
    const brands = [
      { brand: "Not)A;Brand", version: "99" },
      { brand: "Chromium", version: "156" },
      { brand: "Google Chrome", version: "156" },
    ];
    expect(fromUaData({ brands, platform: "Linux", platformVersion: "6.8.0" })).toBe("Chrome 156 on Linux");
    expect(fromUaData({ brands, platform: "Windows", platformVersion: "15.0.0" })).toBe("Chrome 156 on Windows 11");
    expect(fromUaData({ brands, platform: "Windows", platformVersion: "10.0.0" })).toBe("Chrome 156 on Windows 10");
    expect(fromUaData({ brands, platform: "macOS", platformVersion: "14.5.0" })).toBe("Chrome 156 on macOS 14.5");
    expect(fromUaData({ brands, platform: "Android", platformVersion: "15.0.0" })).toBe("Chrome 156 on Android 15");
    expect(fromUaData({ brands, platform: "Windows" })).toBe("Chrome 156 on Windows");
    expect(
      fromUaData({ brands: [{ brand: "Chromium", version: "156" }, { brand: "Not_A Brand", version: "24" }], platform: "Linux" }),
    ).toBe("Chromium 156 on Linux");
    expect(fromUaData({ brands: [{ brand: "Microsoft Edge", version: "150" }], platform: "Windows" })).toBe("Edge 150 on Windows");
    expect(fromUaData({ brands: [], platform: "Linux" })).toBeNull();
  });

  it("reads user-agent strings where there is no userAgentData", () => {
    expect(fromUserAgent("Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0")).toBe("Firefox 140 on Linux");
    expect(
      fromUserAgent(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Mobile/15E148 Safari/604.1",
      ),
    ).toBe("Safari 18 on iOS 18.2");
    expect(
      fromUserAgent(
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
      ),
    ).toBe("Safari 17 on macOS");
    expect(
      fromUserAgent(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36 Edg/156.0.0.0",
      ),
    ).toBe("Edge 156 on Windows");
    expect(
      fromUserAgent("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Mobile Safari/537.36"),
    ).toBe("Chrome 156 on Android 14");
    expect(fromUserAgent("Mozilla/5.0 (Android 14; Mobile; rv:140.0) Gecko/140.0 Firefox/140.0")).toBe("Firefox 140 on Android 14");
    expect(fromUserAgent("curl/8")).toBe("Browser");
  });
});
