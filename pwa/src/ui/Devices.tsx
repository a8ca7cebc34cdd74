// Devices.tsx — this person's devices (DeviceService): rename, sign out others, and link a new
// one (PIN or QR code; see link/LinkExistingDevice.tsx).
import { useCallback, useEffect, useState, type FormEvent } from "react";
import { deviceClient } from "../api";
import { reasonOf } from "../errors";
import type { Device } from "../gen/kitsulan/v1/device_pb";
import { useI18n } from "../i18n/i18n";
import { errorText } from "../i18n/messages";
import type { Chat } from "../state/chat";
import { Dialog } from "./Dialog";
import { LinkExistingDevice } from "./link/LinkExistingDevice";

function DeviceRow({
  device,
  onChanged,
  onError,
}: {
  device: Device;
  onChanged: () => void;
  onError: (err: unknown) => void;
}) {
  const { t, lang } = useI18n();
  const [renaming, setRenaming] = useState(false);
  const [name, setName] = useState(device.name);
  const [busy, setBusy] = useState(false);
  const label = device.name || t("thisDevice");
  const when = new Date(Number(device.lastSeenAtMs || device.createdAtMs)).toLocaleString(lang, {
    dateStyle: "medium",
    timeStyle: "short",
  });

  async function act(fn: () => Promise<unknown>) {
    setBusy(true);
    try {
      await fn();
      onChanged();
    } catch (err) {
      onError(err);
    } finally {
      setBusy(false);
    }
  }

  function rename(e: FormEvent) {
    e.preventDefault();
    void act(async () => {
      await deviceClient.renameDevice({ deviceId: device.id, name: name.trim() });
      setRenaming(false);
    });
  }

  return (
    <li className="device" data-device-id={device.id}>
      {renaming ? (
        <form className="row device-rename" onSubmit={rename}>
          <label className="grow">
            {t("deviceName")}
            <input required maxLength={64} autoFocus value={name} onChange={(e) => setName(e.target.value)} />
          </label>
          <button type="button" onClick={() => setRenaming(false)}>
            {t("cancel")}
          </button>
          <button type="submit" className="primary" disabled={busy}>
            {t("save")}
          </button>
        </form>
      ) : (
        <>
          <div className="device-info">
            <strong>{device.name}</strong>
            {device.current && <span className="badge-soft">{t("thisDevice")}</span>}
            <span className="muted">{t("lastSeen", { when })}</span>
          </div>
          <div className="row">
            <button type="button" aria-label={t("renameDevice", { name: label })} onClick={() => setRenaming(true)}>
              {t("rename")}
            </button>
            {!device.current && (
              <button
                type="button"
                className="danger"
                disabled={busy}
                aria-label={t("signOutDevice", { name: label })}
                onClick={() => void act(() => deviceClient.signOutDevice({ deviceId: device.id }))}
              >
                {t("signOut")}
              </button>
            )}
          </div>
        </>
      )}
    </li>
  );
}

export function Devices({ chat, onClose }: { chat: Chat; onClose: () => void }) {
  const { t } = useI18n();
  const [devices, setDevices] = useState<Device[] | null>(null);
  const [linking, setLinking] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const canLink = chat.engine.state === "ready";

  const onError = useCallback((err: unknown) => setError(errorText(t, reasonOf(err))), [t]);
  const reload = useCallback(async () => {
    try {
      setDevices((await deviceClient.listDevices({})).devices);
      setError(null);
    } catch (err) {
      onError(err);
    }
  }, [onError]);

  useEffect(() => {
    void reload();
  }, [reload]);

  const others = devices?.filter((d) => !d.current) ?? [];

  async function signOutOthers() {
    try {
      for (const d of others) await deviceClient.signOutDevice({ deviceId: d.id });
    } catch (err) {
      onError(err);
    }
    await reload();
  }

  return (
    <Dialog title={t("devices")} onClose={onClose}>
      {linking ? (
        <LinkExistingDevice engine={chat.engine} onDone={() => setLinking(false)} onLinked={() => void reload()} />
      ) : (
        <div className="form">
          {devices === null ? (
            <p role="status">{t("working")}</p>
          ) : (
            <ul className="devices" aria-label={t("devices")}>
              {devices.map((d) => (
                <DeviceRow key={d.id} device={d} onChanged={() => void reload()} onError={onError} />
              ))}
            </ul>
          )}
          {error && (
            <p role="alert" className="error">
              {error}
            </p>
          )}
          <div className="row">
            {others.length > 0 && (
              <button type="button" className="danger" onClick={() => void signOutOthers()}>
                {t("signOutOthers")}
              </button>
            )}
            {canLink && (
              <button type="button" className="primary" onClick={() => setLinking(true)}>
                {t("linkNewDevice")}
              </button>
            )}
          </div>
        </div>
      )}
      <div className="row">
        <button type="button" onClick={onClose}>
          {t("close")}
        </button>
      </div>
    </Dialog>
  );
}
