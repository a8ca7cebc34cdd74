// fingerprint.ts — a certificate fingerprint (hex) as people compare it: upper case, in groups of
// four (the party screen's local CA fingerprint).

/** `hex` (any case, separators ignored) as groups of 4 upper-case hex digits; [] when empty. */
export function fingerprintGroups(hex: string): string[] {
  const clean = hex.replace(/[^0-9a-f]/gi, "").toUpperCase();
  const groups: string[] = [];
  for (let i = 0; i < clean.length; i += 4) groups.push(clean.slice(i, i + 4));
  return groups;
}
