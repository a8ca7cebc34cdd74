// signedIn.ts — what App.tsx needs once there is a session: the E2EE engine, the chat over it
// and the key backup. All of them use the crypto module (crypto/load.ts), so they are a chunk of
// their own, imported dynamically: the sign-in form of a visitor without a session does not wait
// for them.
export { attachBackup, detachBackup } from "./crypto/backup";
export { E2ee } from "./crypto/engine";
export { Chat } from "./state/chat";
