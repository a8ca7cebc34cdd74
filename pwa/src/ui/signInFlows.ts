// signInFlows.ts — the parts of the sign-in screen (AuthScreen.tsx) that use the crypto module:
// setting up this device's E2EE after a sign-in or sign-up, the key backup, linking by pairing,
// the recovery key. A chunk of its own, imported dynamically, so the form itself is usable
// before it (and the WASM, crypto/load.ts) arrive; AuthScreen prefetches both once the form is
// painted.
export { currentBackup } from "../crypto/backup";
export { E2ee } from "../crypto/engine";
export { LinkNewDevice } from "./link/LinkNewDevice";
export { RecoveryKeySetup } from "./recovery/RecoveryKeySetup";
export { RestoreFromBackup } from "./recovery/RestoreFromBackup";
