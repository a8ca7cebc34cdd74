// duration.ts — a length of time as people read it ("1 day", "2 недели"), for the disappearing-
// message timer: the largest whole unit, worded by the browser's Intl (plural forms included).
const UNITS: Array<[Intl.NumberFormatOptions["unit"] & string, number]> = [
  ["week", 604_800],
  ["day", 86_400],
  ["hour", 3_600],
  ["minute", 60],
  ["second", 1],
];

/** `seconds` in the largest unit that divides it (weeks, days, hours, minutes, seconds). */
export function durationText(lang: string, seconds: number): string {
  const [unit, size] = UNITS.find(([, size]) => seconds >= size && seconds % size === 0) ?? ["second", 1];
  return new Intl.NumberFormat(lang, { style: "unit", unit, unitDisplay: "long" }).format(seconds / size);
}

/** The timer choices offered besides "off" and "custom": 1 hour, 1 day, 1 week. */
export const TIMER_CHOICES = [3_600, 86_400, 604_800] as const;
/** The server's bounds for a timer (0 turns it off). */
export const MIN_TIMER_SECONDS = 30;
export const MAX_TIMER_SECONDS = 365 * 86_400;
