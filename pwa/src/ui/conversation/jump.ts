// jump.ts — "Go to message" (a pin, a search result): opens its conversation, pages back through
// the history until the message is loaded, scrolls it into view and flashes it. Resolves false
// when the message is not in the history (deleted, disappeared).
import type { Chat } from "../../state/chat";

const PAGES = 40;

function frame(): Promise<void> {
  return new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 30)));
}

export async function jumpTo(chat: Chat, conversationId: string, messageId: string): Promise<boolean> {
  if (chat.get().active !== conversationId) chat.setActive(conversationId);
  for (let page = 0; page <= PAGES; page++) {
    // The view renders what the state holds: wait for it, then look for the bubble.
    for (let i = 0; i < 20; i++) {
      await frame();
      const el = document.querySelector<HTMLElement>(`[data-message-id="${CSS.escape(messageId)}"]`);
      if (el) {
        el.scrollIntoView({ block: "center" });
        el.classList.remove("flash");
        void el.offsetWidth; // restart the animation
        el.classList.add("flash");
        return true;
      }
      if (chat.get().threads[conversationId]?.loaded) break;
    }
    const thread = chat.get().threads[conversationId];
    if (thread?.loaded && !thread.more) return false;
    await chat.messages.loadOlder(conversationId).catch(() => undefined);
  }
  return false;
}
