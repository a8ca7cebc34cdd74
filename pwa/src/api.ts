// api.ts — owns the gRPC-Web transport and the typed service clients; the one place that knows the server's address.
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { ServerInfoService } from "./gen/kitsulan/v1/server_info_pb";

// The server serves this page and its gRPC-Web API on the same origin.
// tonic-web speaks only the binary gRPC-Web format, not the JSON one.
const transport = createGrpcWebTransport({
  baseUrl: window.location.origin,
  useBinaryFormat: true,
});

export const serverInfoClient = createClient(ServerInfoService, transport);
