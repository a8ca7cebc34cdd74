// Preferences.tsx — the language and theme switches (on the sign-in screen and in settings).
import { useI18n, type Lang } from "../i18n/i18n";
import type { Theme } from "../theme";

export function Preferences({ theme, setTheme }: { theme: Theme; setTheme: (t: Theme) => void }) {
  const { t, lang, setLang } = useI18n();
  return (
    <div className="prefs">
      <label>
        {t("language")}
        <select value={lang} onChange={(e) => setLang(e.target.value as Lang)}>
          <option value="en">English</option>
          <option value="ru">Русский</option>
        </select>
      </label>
      <label>
        {t("theme")}
        <select value={theme} onChange={(e) => setTheme(e.target.value as Theme)}>
          <option value="system">{t("themeSystem")}</option>
          <option value="light">{t("themeLight")}</option>
          <option value="dark">{t("themeDark")}</option>
        </select>
      </label>
    </div>
  );
}
