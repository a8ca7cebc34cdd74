// api.ts — owns the gRPC-Web transport and the typed service clients; the one place that knows the server's address.
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AccountService } from "./gen/kitsulan/v1/account_pb";
import { AttachmentService } from "./gen/kitsulan/v1/attachment_pb";
import { AvatarService } from "./gen/kitsulan/v1/avatar_pb";
import { AuthService } from "./gen/kitsulan/v1/auth_pb";
import { KeyBackupService } from "./gen/kitsulan/v1/backup_pb";
import { CallService } from "./gen/kitsulan/v1/call_pb";
import { ConversationService } from "./gen/kitsulan/v1/conversation_pb";
import { DeviceService } from "./gen/kitsulan/v1/device_pb";
import { GuildService } from "./gen/kitsulan/v1/guild_pb";
import { KeyService } from "./gen/kitsulan/v1/keys_pb";
import { PairingService } from "./gen/kitsulan/v1/pairing_pb";
import { PushService } from "./gen/kitsulan/v1/push_pb";
import { ServerInfoService } from "./gen/kitsulan/v1/server_info_pb";
import { ToDeviceService } from "./gen/kitsulan/v1/to_device_pb";
import { VoiceService } from "./gen/kitsulan/v1/voice_pb";

/** Gives the current access token (refreshing it first when it is about to expire). */
export type TokenSource = () => Promise<string | null>;

let tokenSource: TokenSource = () => Promise.resolve(null);

/** Called by the session module once it knows how to get tokens. */
export function setTokenSource(source: TokenSource): void {
  tokenSource = source;
}

const auth: Interceptor = (next) => async (req) => {
  // AuthService calls other than SignOut carry no token (Refresh would recurse).
  const open = req.service.typeName === AuthService.typeName && req.method.name !== "SignOut";
  if (!open) {
    const token = await tokenSource();
    if (token) req.header.set("authorization", `Bearer ${token}`);
  }
  return next(req);
};

// The server serves this page and its gRPC-Web API on the same origin.
// tonic-web speaks only the binary gRPC-Web format, not the JSON one.
const transport = createGrpcWebTransport({
  baseUrl: window.location.origin,
  useBinaryFormat: true,
  interceptors: [auth],
});

/** The gateway's WebSocket address on this origin. */
export function gatewayUrl(): string {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}/v1/gateway`;
}

export const serverInfoClient = createClient(ServerInfoService, transport);
export const authClient = createClient(AuthService, transport);
export const accountClient = createClient(AccountService, transport);
export const keyClient = createClient(KeyService, transport);
export const toDeviceClient = createClient(ToDeviceService, transport);
export const conversationClient = createClient(ConversationService, transport);
export const deviceClient = createClient(DeviceService, transport);
export const pairingClient = createClient(PairingService, transport);
export const callClient = createClient(CallService, transport);
export const guildClient = createClient(GuildService, transport);
export const attachmentClient = createClient(AttachmentService, transport);
export const avatarClient = createClient(AvatarService, transport);
export const keyBackupClient = createClient(KeyBackupService, transport);
export const pushClient = createClient(PushService, transport);
export const voiceClient = createClient(VoiceService, transport);
