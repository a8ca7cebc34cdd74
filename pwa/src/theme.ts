// theme.ts — light, dark or the system's choice, kept in localStorage and applied as <html data-theme>.
import { useCallback, useEffect, useState } from "react";

export type Theme = "system" | "light" | "dark";
const STORAGE = "kitsulan.theme";

function saved(): Theme {
  const t = localStorage.getItem(STORAGE);
  return t === "light" || t === "dark" ? t : "system";
}

export function applyTheme(theme: Theme): void {
  const dark = theme === "dark" || (theme === "system" && matchMedia("(prefers-color-scheme: dark)").matches);
  document.documentElement.dataset.theme = dark ? "dark" : "light";
}

export function useTheme(): [Theme, (t: Theme) => void] {
  const [theme, setThemeState] = useState<Theme>(saved);
  useEffect(() => {
    applyTheme(theme);
    const mq = matchMedia("(prefers-color-scheme: dark)");
    const onChange = () => applyTheme(theme);
    mq.addEventListener("change", onChange);
    return () => mq.removeEventListener("change", onChange);
  }, [theme]);
  const setTheme = useCallback((t: Theme) => {
    localStorage.setItem(STORAGE, t);
    setThemeState(t);
  }, []);
  return [theme, setTheme];
}
