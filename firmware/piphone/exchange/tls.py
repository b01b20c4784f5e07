"""TLS for the exchange on a LAN: a private CA, a server certificate for this machine's names
and addresses, and the rule that tokens do not cross the LAN in clear.

``piphone exchange --init-config`` makes the CA and the certificate beside exchange.toml
(``--init-tls`` issues a new certificate from the same CA: more names, or a renewal); the
exchange then serves wss:// and ``add-phone`` hands each phone the CA. The CA signs nothing
else: its key (0600) stays beside its certificate for the next ``--init-tls``.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..errors import ConfigError, PiphoneError
from ..tomlconfig import read_private, write_private, write_public

CA_DAYS = 3650  # the CA phones trust: ten years
# A server certificate: 825 days, the longest Apple's clients accept even from a private CA.
CERT_DAYS = 825


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the CA's certificate (PEM): what phones trust (ca_file)
    ca_key: Path  # the CA's key (0600)
    cert: Path  # the exchange's certificate (PEM)
    key: Path  # its key (0600)

    @classmethod
    def beside(cls, config_path: Path) -> TlsFiles:
        """exchange.toml -> exchange-ca.pem, exchange-ca.key, exchange-cert.pem, -cert.key."""
        stem = config_path.with_name(config_path.stem)
        return cls(Path(f"{stem}-ca.pem"), Path(f"{stem}-ca.key"), Path(f"{stem}-cert.pem"),
                   Path(f"{stem}-cert.key"))

    @classmethod
    def of(cls, ca: str | Path, cert: str | Path, key: str | Path) -> TlsFiles:
        return cls(Path(ca), Path(ca).with_suffix(".key"), Path(cert), Path(key))


def local_names(names: Iterable[str] = (), addresses: Iterable[str] = ()
                ) -> tuple[list[str], list[str]]:
    """Host names and addresses a phone may reach this machine by: localhost, the host name
    and its mDNS name (NAME.local), every address of its interfaces, and ``names`` and
    ``addresses`` given (checked)."""
    for name in names:
        if not _is_host_name(name):
            raise PiphoneError(f"--name {name!r} is not a host name")
    for address in addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise PiphoneError(f"--address {address!r} is not an IP address") from None
    host = socket.gethostname().split(".")[0]
    own = [n for n in ("localhost", host, f"{host}.local") if _is_host_name(n)]
    found = ["127.0.0.1", "::1", *_interface_addresses(), *addresses]
    return (list(dict.fromkeys([*own, *names])),
            list(dict.fromkeys(str(ipaddress.ip_address(a)) for a in found)))


def _is_host_name(name: str) -> bool:
    labels = name.split(".")
    return 0 < len(name) <= 253 and all(
        0 < len(label) <= 63 and label.replace("-", "").isascii()
        and label.replace("-", "").isalnum() and not label.startswith("-") for label in labels)


def _interface_addresses() -> list[str]:
    """Every unicast address of this machine's interfaces (no IPv6 link-local: a certificate
    cannot name its zone)."""
    import ifaddr  # aioice's dependency: what ICE uses to list the same addresses

    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            address = ip.ip[0] if isinstance(ip.ip, tuple) else ip.ip
            with contextlib.suppress(ValueError):
                parsed = ipaddress.ip_address(address)
                if not parsed.is_link_local and not parsed.is_multicast:
                    found.append(str(parsed))
    return found


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _builder(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey,
             days: int) -> x509.CertificateBuilder:
    """A certificate for ``key``, valid from an hour ago (clocks differ) for ``days``."""
    now = _now()
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=days)))


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """Signatures (ECDHE handshakes), and for the CA signing certificates and CRLs."""
    return x509.KeyUsage(digital_signature=True, key_cert_sign=ca, crl_sign=ca,
                         content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, encipher_only=False,
                         decipher_only=False)


def _create_ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (_builder(subject, subject, key, CA_DAYS)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _issue(ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, names: list[str],
           addresses: list[str]) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    alt += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (_builder(subject, ca.subject, key, CERT_DAYS)
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def init(files: TlsFiles, names: list[str], addresses: list[str], *,
         like: Path | None = None) -> list[str]:
    """Issue the exchange's certificate for ``names`` and ``addresses`` from its CA, making the
    CA first if there is none. Keys are written 0600 (owned like ``like`` when run as root),
    certificates 0644. Returns what the certificate names."""
    if files.ca.exists():
        try:
            ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
            ca_key = serialization.load_pem_private_key(read_private(files.ca_key).encode(),
                                                        password=None)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{files.ca}: cannot use this CA: {exc}") from None
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"{files.ca_key}: not the EC key piphone makes")
    else:
        ca_key, ca = _create_ca(f"piphone exchange CA ({names[1] if len(names) > 1 else 'LAN'})")
        write_private(files.ca_key, _key_pem(ca_key), like=like, replace=False)
        write_public(files.ca, _cert_pem(ca), like=like)
    key, cert = _issue(ca_key, ca, names, addresses)
    write_private(files.key, _key_pem(key), like=like, replace=True)
    write_public(files.cert, _cert_pem(cert), like=like)
    return [*names, *addresses]


def server_context(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    """The exchange's TLS (1.2 or later) with ``cert``; ``key`` is a secret like any other."""
    read_private(key)  # refuses a key others may read, or a link
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise PiphoneError(f"cannot load TLS certificate {cert} / key {key}: {exc}") from None
    return context


def _loopback_only(host: str) -> bool:
    """Whether ``host`` is this machine's loopback and nothing else: ``localhost`` or a
    loopback address. Stricter than voice.rtc.is_loopback on purpose, as it decides whether
    tokens may go in clear: a name under .localhost could resolve elsewhere."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refuse_plaintext(host: str, tls: bool, allowed: bool) -> None:
    """Tokens must not cross the LAN in clear: ws:// only on loopback unless allowed."""
    if tls or allowed or _loopback_only(host):
        return
    raise PiphoneError(
        f"refusing to serve ws:// on {host}: access tokens would cross the network in clear. "
        "Serve wss:// (tls_cert and tls_key in the config: `piphone exchange --init-tls "
        "--config FILE` makes a private CA and a certificate), listen on 127.0.0.1, or say "
        "--allow-plaintext (allow_plaintext = true)")
