"""`piphone exchange`: its options, and what an administrator does with it besides serving:
``--init-config`` and ``--init-tls`` (the config, a private CA and a certificate), and the
phones' keys (``add-phone``, ``remove-phone``, ``list-phones``)."""

from __future__ import annotations

import argparse
import socket
import ssl
from pathlib import Path
from typing import Any

from .errors import PiphoneError


def add_parser(sub: Any, serve: Any) -> None:
    """``piphone exchange`` on the CLI's subparsers; ``serve``: the command that serves."""
    ex = sub.add_parser("exchange", help="serve the local exchange; add and remove phones")
    ex.add_argument("--config", type=Path, help="exchange.toml")
    ex.add_argument("--init-config", type=Path, metavar="FILE",
                    help="write a starter config with a fresh API key to FILE, and a private CA "
                         "and a certificate for this machine beside it (wss://), and exit")
    ex.add_argument("--init-tls", action="store_true",
                    help="with --config: issue a new certificate from the config's CA (making "
                         "the CA if it has none), for more names or a renewal, and exit")
    ex.add_argument("--name", action="append", default=[], metavar="HOST",
                    help="with --init-config/--init-tls: one more host name for the certificate "
                         "(besides localhost, this host's name and NAME.local), repeatable")
    ex.add_argument("--address", action="append", default=[], metavar="ADDR",
                    help="with --init-config/--init-tls: one more address for the certificate "
                         "(besides this machine's), repeatable")
    ex.add_argument("--owner", metavar="USER",
                    help="with --init-config run as root: give the files to USER (the user the "
                         "exchange runs as, e.g. piphone)")
    ex.add_argument("--host", help="address to listen on (default: the config's)")
    ex.add_argument("--port", type=int, help="port to listen on (default: the config's)")
    ex.add_argument("--tls-cert", type=Path, help="certificate (PEM) to serve wss:// (default: "
                                                   "the config's tls_cert)")
    ex.add_argument("--tls-key", type=Path, help="private key (PEM) of --tls-cert")
    ex.add_argument("--allow-plaintext", action="store_true",
                    help="serve ws:// beyond loopback (tokens cross the network in clear)")
    ex.set_defaults(func=serve, action=None)
    actions = ex.add_subparsers(dest="action", metavar="{add-phone,remove-phone,list-phones}")
    config = {"type": Path, "default": argparse.SUPPRESS, "help": "exchange.toml"}
    add = actions.add_parser("add-phone", help="issue a key that signs tokens for NAME only, "
                                               "and print (or write) what the phone needs")
    add.add_argument("name", help="the phone's identity")
    add.add_argument("--config", **config)
    add.add_argument("--out", type=Path, metavar="DIR",
                     help="write DIR/piphone.toml (its [account]), DIR/secrets.toml (0600) and "
                          "the exchange's CA instead of printing them")
    add.add_argument("--url", help="the signaling URL the phone uses (default: "
                                   "wss://THIS-HOST.local:PORT/signal)")
    remove = actions.add_parser("remove-phone", help="revoke NAME's key (its sessions end "
                                                     "within seconds, no restart)")
    remove.add_argument("name")
    remove.add_argument("--config", **config)
    listing = actions.add_parser("list-phones", help="the phones that have a key")
    listing.add_argument("--config", **config)


def init_config(args: argparse.Namespace) -> int:
    from .exchange import config as exchange_config
    from .exchange.tls import TlsFiles

    path = exchange_config.write_starter(args.init_config, names=tuple(args.name),
                                         addresses=tuple(args.address), owner=args.owner)
    files = TlsFiles.beside(path)
    print(f"wrote {path} (keep it private: it holds the API key secret)")
    print(f"wrote a private CA {files.ca} (its key {files.ca_key}) and a certificate for this "
          f"machine {files.cert} (key {files.key}): the exchange serves wss://")
    print("phones: `piphone exchange add-phone NAME --config FILE` gives each its own key and "
          "the CA")
    return 0


def admin(args: argparse.Namespace) -> int:
    """--init-tls, and the actions on the phones' keys (in the file phone_keys_path names)."""
    from .exchange import config as exchange_config

    if args.config is None:
        raise PiphoneError("needs --config exchange.toml")
    cfg = exchange_config.load(args.config)
    if args.init_tls:
        return _init_tls(cfg, args)
    keys = exchange_config.phone_keys_path(cfg)
    return {"add-phone": _add_phone, "remove-phone": _remove_phone,
            "list-phones": _list_phones}[args.action](cfg, keys, args)


def _init_tls(cfg: Any, args: argparse.Namespace) -> int:
    from .exchange import tls
    from .tomlconfig import read_private, write_private

    path = cfg.path
    if cfg.tls_cert is not None and cfg.tls_ca is None:
        raise PiphoneError(f"{path}: tls_cert is set but tls_ca is not: that certificate is not "
                           "from piphone's CA; not replacing it")
    if cfg.tls_cert is not None:
        files = tls.TlsFiles.of(cfg.tls_ca, cfg.tls_cert, cfg.tls_key)
    else:
        files = tls.TlsFiles.beside(path)
    names, addresses = tls.local_names(args.name, args.address)
    tls.init(files, names, addresses, like=path)
    if cfg.tls_cert is None:  # name the files in the config, right under [exchange]
        text = read_private(path)
        lines = text.splitlines(keepends=True)
        at = next(i for i, line in enumerate(lines) if line.strip().startswith("[exchange]"))
        lines[at + 1:at + 1] = [
            f'tls_cert = "{files.cert.name}"  # wss:// (piphone exchange --init-tls)\n',
            f'tls_key = "{files.key.name}"\n',
            f'tls_ca = "{files.ca.name}"      # the CA phones trust (add-phone hands it out)\n']
        write_private(path, "".join(lines), like=path)
    print(f"wrote a certificate {files.cert} for {', '.join([*names, *addresses])}, issued by "
          f"{files.ca}; restart the exchange to serve it")
    return 0


def _add_phone(cfg: Any, keys: Path, args: argparse.Namespace) -> int:
    from .exchange import phones
    from .tomlconfig import write_private, write_public

    key = phones.add(keys, args.name, like=cfg.path)
    tls = cfg.tls_cert is not None or cfg.tls_ca is not None
    url = args.url or (f"{'wss' if tls else 'ws'}://{socket.gethostname().split('.')[0]}.local"
                       f":{cfg.port}/signal")
    ca = Path(cfg.tls_ca) if cfg.tls_ca is not None else None
    account = phone_account(cfg, key, url, ca.name if ca is not None else None)
    secrets = (f"# secrets.toml for {key.identity}: mode 0600, owned by the user piphone runs "
               f"as\n[account]\napi_key_secret = \"{key.secret}\"\n")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        written = [write_public(args.out / "piphone.toml", account),
                   write_private(args.out / "secrets.toml", secrets)]
        if ca is not None:
            written.append(write_public(args.out / ca.name, ca.read_text()))
        print(f"{key.identity}: key {key.sid}; wrote {', '.join(map(str, written))}")
        print("copy them to the phone's /etc/piphone (secrets.toml 0600, owned by piphone) and "
              "add its [audio], [phone] and [pins] to piphone.toml")
        return 0
    print(f"# {key.identity}: key {key.sid}. The phone's piphone.toml [account]:")
    print(account)
    print("# its secrets.toml (mode 0600):")
    print(secrets)
    if ca is not None:
        print(f"# and the exchange's CA, as {ca.name} beside piphone.toml:")
        print(ca.read_text(), end="")
    return 0


def phone_account(cfg: Any, key: Any, url: str, ca_name: str | None) -> str:
    """The [account] block of a phone that mints its tokens with its own key."""
    ca = (f'ca_file = "{ca_name}"   # the exchange\'s private CA (beside this file)\n'
          if ca_name is not None and url.startswith("wss://") else "")
    return (f"# {key.identity}'s account on the local exchange (`piphone exchange add-phone`)\n"
            f"[account]\nidentity = \"{key.identity}\"\nsignaling_url = \"{url}\"\n{ca}"
            f"account_sid = \"{cfg.account_sid}\"\n"
            f"api_key_sid = \"{key.sid}\"   # this phone's key: it signs tokens for "
            f"{key.identity} only\n")


def _remove_phone(cfg: Any, keys: Path, args: argparse.Namespace) -> int:
    from .exchange import phones

    key = phones.remove(keys, args.name, like=cfg.path)
    print(f"removed {key.identity}'s key {key.sid}: the running exchange refuses it and closes "
          f"its sessions within {phones.WATCH_INTERVAL:g} s")
    return 0


def _list_phones(cfg: Any, keys: Path, args: argparse.Namespace) -> int:
    from .exchange import phones

    issued = phones.read(keys)
    for key in sorted(issued.values(), key=lambda k: k.identity):
        print(f"{key.identity}\t{key.sid}\t{key.created}")
    if not issued:
        print("no phone has a key (`piphone exchange add-phone NAME`)")
    return 0


def server_tls(cfg: Any, cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """The exchange's TLS: --tls-cert/--tls-key, else the config's tls_cert/tls_key."""
    from .exchange import tls

    if cert is None and key is None:
        cert, key = cfg.tls_cert, cfg.tls_key
        if cert is None:
            return None
    if cert is None or key is None:
        raise PiphoneError("--tls-cert and --tls-key go together")
    return tls.server_context(cert, key)
