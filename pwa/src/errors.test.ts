// errors.test.ts — every reason the server can send has a text in English and in Russian.
import { describe, expect, it } from "vitest";
import { ErrorReason } from "./gen/kitsulan/v1/errors_pb";
import { channelErrorText, en, errorText, ru, type MessageKey } from "./i18n/messages";

/** Every reason the server sends, by the name it travels as ("USERNAME_INVALID", …). */
const reasons = Object.values(ErrorReason)
  .filter((value): value is ErrorReason => typeof value === "number" && value !== ErrorReason.UNSPECIFIED)
  .map((value) => ErrorReason[value]);

function translate(messages: Record<MessageKey, string>) {
  return (key: MessageKey, vars?: Record<string, string>) => {
    let s = messages[key];
    for (const [k, v] of Object.entries(vars ?? {})) s = s.replace(`{${k}}`, v);
    return s;
  };
}

describe("error texts", () => {
  it("covers the whole generated enum", () => {
    expect(reasons.length).toBeGreaterThan(100);
    expect(reasons).toContain("USERNAME_INVALID");
    expect(reasons).not.toContain("UNSPECIFIED");
  });

  it.each(reasons)("%s has a text in English and in Russian", (reason) => {
    const english = errorText(translate(en), reason);
    const russian = errorText(translate(ru), reason);
    expect(english).not.toBe(translate(en)("errorGeneric", { reason }));
    expect(russian).not.toBe(translate(ru)("errorGeneric", { reason }));
    expect(english.trim()).not.toBe("");
    expect(russian).toMatch(/[а-яё]/i);
    expect(russian).not.toBe(english);
  });

  it("falls back to the generic text for a reason it does not know", () => {
    expect(errorText(translate(en), "NO_SUCH_REASON")).toBe("Something went wrong: NO_SUCH_REASON");
    expect(errorText(translate(ru), "NO_SUCH_REASON")).toBe("Что-то пошло не так: NO_SUCH_REASON");
  });

  it("names a private channel, not a group, where a channel's member change is refused", () => {
    for (const messages of [en, ru]) {
      const t = translate(messages);
      for (const reason of ["NOT_ALLOWED", "MEMBER_NOT_FOUND", "GROUP_FULL"]) {
        expect(channelErrorText(t, reason)).toBe(messages[`channelErr.${reason}` as MessageKey]);
        expect(channelErrorText(t, reason)).not.toBe(errorText(t, reason));
      }
      // Any other reason: its usual text.
      expect(channelErrorText(t, "UNAVAILABLE")).toBe(errorText(t, "UNAVAILABLE"));
    }
  });
});
