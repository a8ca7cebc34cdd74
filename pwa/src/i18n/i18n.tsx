// i18n.tsx — the UI language: English or Russian, from the browser unless the person chose one.
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { en, ru, type MessageKey } from "./messages";

export type Lang = "en" | "ru";
const STORAGE = "kitsulan.lang";

export function browserLang(): Lang {
  const saved = localStorage.getItem(STORAGE);
  if (saved === "en" || saved === "ru") return saved;
  return navigator.languages.some((l) => l.toLowerCase().startsWith("ru")) ? "ru" : "en";
}

export type Translate = (key: MessageKey, vars?: Record<string, string | number>) => string;

interface I18n {
  lang: Lang;
  setLang: (lang: Lang) => void;
  t: Translate;
}

const Ctx = createContext<I18n | null>(null);

export function I18nProvider({ children }: { children: ReactNode }) {
  const [lang, setLangState] = useState<Lang>(browserLang);
  useEffect(() => {
    document.documentElement.lang = lang;
  }, [lang]);
  const setLang = useCallback((l: Lang) => {
    localStorage.setItem(STORAGE, l);
    setLangState(l);
  }, []);
  const t = useCallback<Translate>(
    (key, vars) => {
      let s = (lang === "ru" ? ru : en)[key];
      for (const [k, v] of Object.entries(vars ?? {})) s = s.replace(`{${k}}`, String(v));
      return s;
    },
    [lang],
  );
  const value = useMemo(() => ({ lang, setLang, t }), [lang, setLang, t]);
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}

export function useI18n(): I18n {
  const ctx = useContext(Ctx);
  if (!ctx) throw new Error("useI18n outside I18nProvider");
  return ctx;
}
