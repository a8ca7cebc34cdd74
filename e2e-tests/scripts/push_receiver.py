#!/usr/bin/env python3
"""A stand-in for a browser's push service, for the Web Push e2e test (e2e-tests/tests/e2e/push.rs).

It checks what KitsuLAN sends with implementations that are not KitsuLAN's: `http_ece` (PyPI
`http-ece`) decrypts the RFC 8291 payload with the subscription's private key and auth secret,
and `cryptography` verifies the VAPID token's ES256 signature (RFC 8292) with the key in the
request's `k=`.

Usage: push_receiver.py DIR
  Makes a test CA and a certificate for 127.0.0.1 (DIR/ca.pem is what the server is told to
  trust), a subscription key pair and auth secret, and serves HTTPS on 127.0.0.1 (a free port).
  Prints one JSON line when ready: {"ready": true, "port", "ca", "p256dh", "auth"} (base64url),
  then one JSON line per request received:
    {"at" (monotonic seconds), "path", "status", "headers": {...}, "payload": <the decrypted JSON or null>,
     "plaintext": <the decrypted text>, "body_len", "jwt": <claims or null>, "jwt_header",
     "k", "errors": [...]}
  Answers 201, except: paths under /gone/ get 410; under /flaky/ the first two requests of a
  path get 503.
"""
import base64
import datetime
import http.server
import ipaddress
import json
import os
import ssl
import sys
import threading
import time

try:
    import http_ece
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
    from cryptography.x509.oid import NameOID
except ImportError as e:  # the test reads this line and fails with it
    print(json.dumps({"ready": False, "error": f"missing Python package ({e}): pip install http-ece cryptography"}),
          flush=True)
    sys.exit(2)


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_certificates(directory: str):
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "push receiver test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = {name: os.path.join(directory, name) for name in ("ca.pem", "cert.pem", "key.pem")}
    with open(paths["ca.pem"], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths["cert.pem"], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths["key.pem"], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return paths


def check_vapid(authorization: str, errors: list):
    """Verifies `vapid t=<JWT>, k=<key>`; returns (claims, header, k)."""
    if not authorization.startswith("vapid "):
        errors.append(f"Authorization is not a vapid one: {authorization[:20]!r}")
        return None, None, None
    params = dict(part.strip().split("=", 1) for part in authorization[len("vapid "):].split(","))
    token, k = params.get("t"), params.get("k")
    if not token or not k:
        errors.append("vapid Authorization without t= or k=")
        return None, None, k
    try:
        header_b64, claims_b64, signature_b64 = token.split(".")
        header = json.loads(unb64u(header_b64))
        claims = json.loads(unb64u(claims_b64))
        signature = unb64u(signature_b64)
        if len(signature) != 64:
            errors.append(f"ES256 signature is {len(signature)} bytes, not 64")
            return claims, header, k
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64u(k))
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        public.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
        return claims, header, k
    except InvalidSignature:
        errors.append("the VAPID signature does not verify with k")
    except Exception as e:  # noqa: BLE001 - every failure is reported to the test
        errors.append(f"cannot read the VAPID token: {e!r}")
    return None, None, k


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    paths = make_certificates(sys.argv[1])
    ua_key = ec.generate_private_key(ec.SECP256R1())
    ua_public = ua_key.public_key().public_bytes(serialization.Encoding.X962,
                                                 serialization.PublicFormat.UncompressedPoint)
    auth = os.urandom(16)
    flaky = {}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            status = 201
            with lock:
                if self.path.startswith("/gone/"):
                    status = 410
                elif self.path.startswith("/flaky/"):
                    flaky[self.path] = flaky.get(self.path, 0) + 1
                    if flaky[self.path] <= 2:
                        status = 503
            errors = []
            payload, plaintext = None, None
            try:
                plaintext = http_ece.decrypt(body, private_key=ua_key, auth_secret=auth, version="aes128gcm")
                plaintext = plaintext.decode()
                payload = json.loads(plaintext)
            except Exception as e:  # noqa: BLE001
                errors.append(f"cannot decrypt or parse the payload: {e!r}")
            claims, header, k = check_vapid(self.headers.get("Authorization", ""), errors)
            record = {
                "at": time.monotonic(),
                "path": self.path,
                "status": status,
                "headers": {name: self.headers.get(name) for name in
                            ("TTL", "Urgency", "Topic", "Content-Encoding", "Content-Type")},
                "payload": payload,
                "plaintext": plaintext,
                "body_len": len(body),
                "jwt": claims,
                "jwt_header": header,
                "k": k,
                "errors": errors,
            }
            with lock:
                print(json.dumps(record), flush=True)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(paths["cert.pem"], paths["key.pem"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(json.dumps({"ready": True, "port": server.server_address[1], "ca": paths["ca.pem"],
                      "p256dh": b64u(ua_public), "auth": b64u(auth)}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
