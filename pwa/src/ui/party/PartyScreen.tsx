// PartyScreen.tsx — `/party`, for a projector or a TV at a LAN party: the server's name, the
// address this screen was opened at as a big QR code (and in large text) for phones and laptops
// to join, the local CA's fingerprint and a QR code of `/ca.crt` when the server's HTTPS comes
// from its own CA, and who is online.
//
// Who is online is what the server tells the signed-in person anyway: their contacts (accounts
// sharing a conversation both accepted; docs/gateway.md), live from the gateway's presence
// events. The screen asks for nothing more: there is no server-wide list of who is connected, so
// neither a stranger nor a signed-in account can list the people on a server through it.
// Signed out, the screen shows the rest and offers to sign in.
import { useEffect, useMemo, useState } from "react";
import { serverInfoClient } from "../../api";
import { useI18n } from "../../i18n/i18n";
import { fingerprintGroups } from "../../lib/fingerprint";
import { useChat, type Chat } from "../../state/chat";
import { PersonAvatar } from "../Avatar";
import { QrCode } from "../link/QrCode";
import { personName } from "../names";

interface Info {
  name: string;
  localCaSha256: string;
}

function Online({ chat }: { chat: Chat }) {
  const { t } = useI18n();
  const online = useChat(chat, (s) => s.online);
  const status = useChat(chat, (s) => s.status);
  const me = useChat(chat, (s) => s.me);
  useChat(chat, (s) => s.profiles); // re-render when names arrive
  const people = Object.keys(online)
    .map((id) => ({ id, name: personName(chat, t, id) }))
    .sort((a, b) => a.name.localeCompare(b.name));
  return (
    <section className="party-online" aria-labelledby="party-online-heading">
      <h2 id="party-online-heading">{t("partyOnline", { n: people.length })}</h2>
      <p className="muted">{t("partyOnlineWhose", { name: me.displayName || me.username })}</p>
      {status !== "online" ? (
        <p role="status">{t(status === "connecting" ? "connecting" : "offline")}</p>
      ) : people.length === 0 ? (
        <p>{t("partyNobodyOnline")}</p>
      ) : (
        <ul className="party-people" aria-label={t("partyOnlineList")}>
          {people.map((p) => (
            <li key={p.id}>
              <PersonAvatar chat={chat} accountId={p.id} name={p.name} className="avatar party-avatar" />
              <span className="party-name">{p.name}</span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

export function PartyScreen({ chat, onSignIn }: { chat: Chat | null; onSignIn?: (() => void) | undefined }) {
  const { t } = useI18n();
  const [info, setInfo] = useState<Info | null>(null);
  const [failed, setFailed] = useState(false);
  const origin = window.location.origin;
  const host = window.location.host;

  useEffect(() => {
    let live = true;
    serverInfoClient
      .getServerInfo({})
      .then((res) => live && setInfo({ name: res.name, localCaSha256: res.localCaSha256 }))
      .catch(() => live && setFailed(true));
    return () => {
      live = false;
    };
  }, []);

  const name = info?.name || t("appName");
  useEffect(() => {
    const before = document.title;
    document.title = `${name} · ${t("partyTitle")}`;
    return () => {
      document.title = before;
    };
  }, [name, t]);

  const groups = useMemo(() => fingerprintGroups(info?.localCaSha256 ?? ""), [info]);

  return (
    <main className="party">
      <header className="party-head">
        <h1 className="party-server">{name}</h1>
        <p className="party-tagline">{t("partyJoinHowTo")}</p>
        {failed && (
          <p role="alert" className="warning">
            {t("partyInfoFailed")}
          </p>
        )}
      </header>
      <div className="party-grid">
        <section className="party-join" aria-labelledby="party-join-heading">
          <h2 id="party-join-heading" className="visually-hidden">
            {t("partyAddress")}
          </h2>
          <QrCode text={origin} label={t("partyQrLabel", { address: origin })} size={360} />
          <p className="party-address" data-testid="party-address">
            {host}
          </p>
          <p className="muted">{origin}</p>
        </section>
        <div className="party-side">
          {groups.length > 0 && (
            <section className="party-trust" aria-labelledby="party-trust-heading">
              <h2 id="party-trust-heading">{t("partyTrustTitle")}</h2>
              <p>{t("partyTrustHowTo")}</p>
              <div className="party-trust-row">
                <QrCode text={`${origin}/ca.crt`} label={t("partyCaQrLabel")} size={160} />
                <div>
                  <p>
                    <a href="/ca.crt" download="kitsulan-ca.crt">
                      {host}/ca.crt
                    </a>
                  </p>
                  <p className="muted">{t("partyFingerprint")}</p>
                  <p className="party-fingerprint" data-testid="party-fingerprint" aria-label={groups.join(" ")}>
                    {groups.map((g, i) => (
                      <span key={i}>{g}</span>
                    ))}
                  </p>
                </div>
              </div>
            </section>
          )}
          {chat ? (
            <Online chat={chat} />
          ) : (
            <section className="party-online" aria-labelledby="party-online-heading">
              <h2 id="party-online-heading">{t("partyOnlineTitle")}</h2>
              <p>{t("partySignInForOnline")}</p>
              {onSignIn && (
                <button type="button" className="primary" onClick={onSignIn}>
                  {t("signIn")}
                </button>
              )}
            </section>
          )}
        </div>
      </div>
      <footer className="party-foot">
        <a href="/">{t("partyBack")}</a>
      </footer>
    </main>
  );
}
