// App.tsx — the landing screen: asks the server who it is (GetServerInfo) and shows the answer.
import { ConnectError } from "@connectrpc/connect";
import { useCallback, useEffect, useState } from "react";
import { serverInfoClient } from "./api";
import {
  DatabaseBackend,
  StorageBackend,
  type GetServerInfoResponse,
} from "./gen/kitsulan/v1/server_info_pb";

type State =
  | { status: "loading" }
  | { status: "ready"; info: GetServerInfoResponse }
  | { status: "error"; message: string };

const REQUEST_TIMEOUT_MS = 10_000;

function databaseLabel(db: DatabaseBackend): string {
  switch (db) {
    case DatabaseBackend.SQLITE:
      return "SQLite";
    case DatabaseBackend.POSTGRES:
      return "PostgreSQL";
    default:
      return "Unknown";
  }
}

function storageLabel(storage: StorageBackend): string {
  switch (storage) {
    case StorageBackend.LOCAL:
      return "Local disk";
    case StorageBackend.S3:
      return "S3";
    default:
      return "Unknown";
  }
}

export function App() {
  const [state, setState] = useState<State>({ status: "loading" });
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    const controller = new AbortController();
    setState({ status: "loading" });
    serverInfoClient
      .getServerInfo({}, { signal: controller.signal, timeoutMs: REQUEST_TIMEOUT_MS })
      .then((info) => {
        if (!controller.signal.aborted) setState({ status: "ready", info });
      })
      .catch((err: unknown) => {
        if (!controller.signal.aborted) {
          setState({ status: "error", message: ConnectError.from(err).message });
        }
      });
    return () => controller.abort();
  }, [attempt]);

  const retry = useCallback(() => setAttempt((n) => n + 1), []);

  return (
    <main className="page">
      <header className="brand">
        <img src="/favicon.svg" alt="" width="48" height="48" />
        <h1>KitsuLAN</h1>
      </header>
      <p className="tagline">A self-hosted, end-to-end encrypted messenger.</p>

      <section className="card" aria-labelledby="server-heading" aria-busy={state.status === "loading"}>
        <h2 id="server-heading">Server</h2>
        {state.status === "loading" && (
          <p role="status" className="muted">
            Connecting to the server…
          </p>
        )}
        {state.status === "error" && (
          <div role="alert" className="error">
            <p>Cannot reach the server: {state.message}</p>
            <button type="button" onClick={retry}>
              Try again
            </button>
          </div>
        )}
        {state.status === "ready" && (
          <dl className="facts">
            <dt>Name</dt>
            <dd>{state.info.name || "—"}</dd>
            <dt>Version</dt>
            <dd>{state.info.version || "—"}</dd>
            <dt>Database</dt>
            <dd>{databaseLabel(state.info.database)}</dd>
            <dt>Storage</dt>
            <dd>{storageLabel(state.info.storage)}</dd>
          </dl>
        )}
      </section>

      <p className="muted">The messenger UI is coming soon.</p>
    </main>
  );
}
