// Avatar.tsx — a person's initial in a circle, where there is no video to show.
export function Avatar({ name }: { name: string }) {
  const initial = Array.from(name.trim())[0]?.toUpperCase() ?? "?";
  return (
    <span className="call-avatar" aria-hidden="true">
      {initial}
    </span>
  );
}
