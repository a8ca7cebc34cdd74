import { describe, expect, it } from "vitest";
import { durationText } from "./duration";

describe("durationText", () => {
  it("words a timer in its largest whole unit, with the language's plurals", () => {
    expect(durationText("en", 86_400)).toBe("1 day");
    expect(durationText("en", 3_600)).toBe("1 hour");
    expect(durationText("en", 604_800)).toBe("1 week");
    expect(durationText("en", 90)).toBe("90 seconds");
    expect(durationText("en", 2 * 86_400)).toBe("2 days");
    expect(durationText("ru", 5 * 86_400)).toBe("5 дней");
    expect(durationText("ru", 3_600)).toBe("1 час");
  });
});
