#!/usr/bin/env python3
"""An independent mDNS/DNS-SD client (python-zeroconf) for the e2e tests of KitsuLAN's LAN
announcement. It prints one JSON object per line on stdout.

  mdns_browse.py find --instance NAME --host HOST [--timeout S] [--watch-goodbye S]
      Browses _kitsulan._tcp.local. for the instance NAME and resolves it (SRV, TXT, A/AAAA);
      then, with a fresh cache, resolves HOST.local. on its own. Prints
      {"found": bool, "seen": [...], "port": …, "server": …, "txt": {…}, "addresses": […],
       "host_addresses": […]}.
      With --watch-goodbye, then waits up to S seconds for the service to be withdrawn and
      prints {"removed": bool, "after_s": …}.

  mdns_browse.py claim --host HOST --address IP [--seconds S]
      Answers for HOST.local. with IP (as another machine on the LAN would), prints
      {"claimed": "HOST.local."} and keeps answering until stdin closes or S seconds pass.
"""

import argparse
import json
import socket
import sys
import threading
import time

try:
    from zeroconf import (AddressResolver, IPVersion, ServiceBrowser, ServiceInfo,
                          ServiceStateChange, Zeroconf)
except ImportError:
    print("python-zeroconf is not installed: python3 -m pip install zeroconf", file=sys.stderr)
    sys.exit(2)

SERVICE_TYPE = "_kitsulan._tcp.local."


def say(obj):
    print(json.dumps(obj), flush=True)


def find(args):
    wanted = f"{args.instance}.{SERVICE_TYPE}"
    seen = set()
    added = threading.Event()
    removed = threading.Event()

    def changed(zeroconf, service_type, name, state_change):
        if state_change is ServiceStateChange.Added:
            seen.add(name)
            if name.lower() == wanted.lower():
                added.set()
        elif state_change is ServiceStateChange.Removed and name.lower() == wanted.lower():
            removed.set()

    zc = Zeroconf(ip_version=IPVersion.All)
    try:
        ServiceBrowser(zc, SERVICE_TYPE, handlers=[changed])
        result = {"found": False}
        if added.wait(args.timeout):
            info = ServiceInfo(SERVICE_TYPE, wanted)
            if info.request(zc, int(args.timeout * 1000)):
                result = {
                    "found": True,
                    "port": info.port,
                    "server": info.server,
                    "txt": {k.decode(): (v.decode() if v is not None else None)
                            for k, v in info.properties.items()},
                    "addresses": info.parsed_scoped_addresses(),
                }
        result["seen"] = sorted(seen)
        # A fresh cache, so the host name is resolved by its own query, not from the records
        # that came with the service.
        resolver_zc = Zeroconf(ip_version=IPVersion.All)
        try:
            resolver = AddressResolver(f"{args.host}.local.")
            resolved = resolver.request(resolver_zc, int(min(args.timeout, 5) * 1000))
            result["host_addresses"] = resolver.parsed_scoped_addresses() if resolved else []
        finally:
            resolver_zc.close()
        say(result)
        if args.watch_goodbye and result["found"]:
            start = time.monotonic()
            gone = removed.wait(args.watch_goodbye)
            say({"removed": gone, "after_s": round(time.monotonic() - start, 2)})
    finally:
        zc.close()


def claim(args):
    zc = Zeroconf(ip_version=IPVersion.V4Only)
    info = ServiceInfo(
        "_http._tcp.local.",
        f"claim-{args.host}._http._tcp.local.",
        addresses=[socket.inet_aton(args.address)],
        port=9,
        server=f"{args.host}.local.",
    )
    try:
        zc.register_service(info)
        say({"claimed": f"{args.host}.local."})
        done = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
        done.wait(args.seconds)
        zc.unregister_service(info)
    finally:
        zc.close()


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("find")
    f.add_argument("--instance", required=True)
    f.add_argument("--host", required=True)
    f.add_argument("--timeout", type=float, default=10.0)
    f.add_argument("--watch-goodbye", type=float, default=0.0)
    c = sub.add_parser("claim")
    c.add_argument("--host", required=True)
    c.add_argument("--address", required=True)
    c.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    {"find": find, "claim": claim}[args.command](args)


if __name__ == "__main__":
    main()
