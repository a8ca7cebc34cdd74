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

  mdns_browse.py claim --host HOST --address IP|auto [--seconds S]
      Holds HOST.local. with IP, as another device on the LAN would: answers queries for it and
      defends it against probes (RFC 6762 8.1: the owner of a name answers a probe, a query of
      type ANY, so the prober picks another name; python-zeroconf answers A queries for a host
      but not ANY, so this part is ours). Prints {"claimed": "HOST.local.", "address": IP} and
      keeps answering until stdin closes or S seconds pass. `auto` picks an address that is not
      this machine's in the subnet of its first non-loopback IPv4 interface (a responder treats
      only an answer from its own subnet as a conflict).
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


def lan_interface():
    """This machine's first non-loopback IPv4 interface: (its address, its network, all ours)."""
    import ipaddress

    import ifaddr  # python-zeroconf's own dependency

    ours = set()
    found = None
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                ours.add(ipaddress.ip_address(ip.ip))
                net = ipaddress.ip_network(f"{ip.ip}/{ip.network_prefix}", strict=False)
                if found is None and not net.is_loopback and net.num_addresses >= 4:
                    found = (ip.ip, net)
    if found is None:
        raise SystemExit("no IPv4 LAN interface to claim a name on")
    return found[0], found[1], ours


def neighbour_address(net, ours):
    """An address in `net` that none of this machine's interfaces has: another device."""
    for host in reversed(list(net.hosts())[-64:]):
        if host not in ours:
            return str(host)
    raise SystemExit(f"no free address in {net}")


def defend(host, address, interface, stop):
    """Answers every query for `host` (A or ANY: probes are ANY) with its A record, by multicast
    on `interface`, until `stop` is set."""
    from zeroconf import DNSAddress, DNSIncoming, DNSOutgoing
    from zeroconf.const import _CLASS_IN, _CLASS_UNIQUE, _FLAGS_AA, _FLAGS_QR_RESPONSE, _TYPE_A, _TYPE_ANY

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("", 5353))
    group = socket.inet_aton("224.0.0.251")
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group + socket.inet_aton(interface))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface))
    sock.settimeout(0.2)
    record = DNSAddress(host, _TYPE_A, _CLASS_IN | _CLASS_UNIQUE, 120, socket.inet_aton(address))
    try:
        while not stop.is_set():
            try:
                data, _ = sock.recvfrom(9000)
            except socket.timeout:
                continue
            msg = DNSIncoming(data)
            if not msg.is_query():
                continue
            if any(q.name.lower() == host.lower() and q.type in (_TYPE_A, _TYPE_ANY) for q in msg.questions):
                out = DNSOutgoing(_FLAGS_QR_RESPONSE | _FLAGS_AA)
                out.add_answer_at_time(record, 0)
                for packet in out.packets():
                    sock.sendto(packet, ("224.0.0.251", 5353))
    finally:
        sock.close()


def claim(args):
    interface, net, ours = lan_interface()
    address = neighbour_address(net, ours) if args.address == "auto" else args.address
    host = f"{args.host}.local."
    zc = Zeroconf(ip_version=IPVersion.V4Only, interfaces=[interface])
    info = ServiceInfo(
        "_http._tcp.local.",
        f"claim-{args.host}._http._tcp.local.",
        addresses=[socket.inet_aton(address)],
        port=9,
        server=host,
    )
    stop = threading.Event()
    defender = threading.Thread(target=defend, args=(host, address, interface, stop), daemon=True)
    try:
        zc.register_service(info)
        defender.start()
        say({"claimed": host, "address": address})
        done = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
        done.wait(args.seconds)
        zc.unregister_service(info)
    finally:
        stop.set()
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
