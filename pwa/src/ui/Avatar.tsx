// Avatar.tsx — a person's or a group's picture in a circle, or their initial when there is none
// (or it cannot be loaded). Pictures come from AvatarService.GetAvatarUrl, are fetched once per
// avatar id (a new id on every change, so a cached one never goes stale) and kept in memory as
// object URLs.
import { useEffect, useState } from "react";
import { avatarClient } from "../api";
import { ConversationKind, type Conversation } from "../gen/kitsulan/v1/conversation_pb";
import type { Chat } from "../state/chat";

/** Whose avatar: an account, a group, or a guild (its icon). */
export type AvatarOwner =
  | { case: "accountId"; value: string }
  | { case: "conversationId"; value: string }
  | { case: "guildId"; value: string };

/** Object URLs by avatar id (null: could not be loaded). */
const cache = new Map<string, Promise<string | null>>();

async function load(owner: AvatarOwner, avatarId: string): Promise<string | null> {
  const res = await avatarClient.getAvatarUrl({ owner });
  const download = res.download;
  if (!download) return null;
  const url = download.url.startsWith("/") ? `${window.location.origin}${download.url}` : download.url;
  const headers = new Headers();
  for (const [name, value] of Object.entries(download.headers)) headers.set(name, value);
  const response = await fetch(url, { method: download.method || "GET", headers, cache: "no-store" });
  if (!response.ok) throw new Error(`avatar: HTTP ${response.status}`);
  const objectUrl = URL.createObjectURL(await response.blob());
  // The avatar changed again in between: this picture is the newer one, cached under its own id.
  const current = res.avatar?.avatarId;
  if (current && current !== avatarId && !cache.has(current)) cache.set(current, Promise.resolve(objectUrl));
  return objectUrl;
}

/** The object URL of avatar `avatarId` of `owner` (null while loading, or when there is none). */
export function useAvatarUrl(owner: AvatarOwner | undefined, avatarId: string | undefined): string | null {
  const [url, setUrl] = useState<{ id: string; url: string | null } | null>(null);
  const kind = owner?.case;
  const value = owner?.value;
  useEffect(() => {
    if (!kind || !value || !avatarId) return;
    let live = true;
    let pending = cache.get(avatarId);
    if (!pending) {
      pending = load({ case: kind, value } as AvatarOwner, avatarId).catch(() => {
        cache.delete(avatarId); // try again next time it is shown
        return null;
      });
      cache.set(avatarId, pending);
    }
    void pending.then((u) => {
      if (live) setUrl({ id: avatarId, url: u });
    });
    return () => {
      live = false;
    };
  }, [kind, value, avatarId]);
  return avatarId && url?.id === avatarId ? url.url : null;
}

export function Avatar({
  name,
  owner,
  avatarId,
  className,
}: {
  name: string;
  owner?: AvatarOwner | undefined;
  avatarId?: string | undefined;
  className?: string | undefined;
}) {
  const url = useAvatarUrl(owner, avatarId);
  const base = className ?? "call-avatar";
  const initial = Array.from(name.trim())[0]?.toUpperCase() ?? "?";
  return (
    <span className={url ? `${base} has-picture` : base} aria-hidden="true">
      {url ? <img className="avatar-img" src={url} alt="" draggable={false} /> : initial}
    </span>
  );
}

/** A person's avatar (ours included), from the chat state. */
export function PersonAvatar({ chat, accountId, name, className }: { chat: Chat; accountId: string; name: string; className?: string | undefined }) {
  const s = chat.get();
  const avatarId = accountId === s.me.accountId ? s.me.avatarId : s.profiles[accountId]?.avatarId;
  return <Avatar name={name} owner={{ case: "accountId", value: accountId }} avatarId={avatarId} className={className} />;
}

/** A conversation's avatar: the group's picture, or the other person's in a direct conversation. */
export function ConversationAvatar({ chat, conversation, name, className }: { chat: Chat; conversation: Conversation; name: string; className?: string | undefined }) {
  if (conversation.kind === ConversationKind.GROUP) {
    return (
      <Avatar
        name={name}
        owner={{ case: "conversationId", value: conversation.id }}
        avatarId={conversation.avatar?.avatarId}
        className={className}
      />
    );
  }
  const other = conversation.members.find((m) => m.accountId !== chat.get().me.accountId);
  if (!other) return <Avatar name={name} className={className} />;
  return <PersonAvatar chat={chat} accountId={other.accountId} name={name} className={className} />;
}
