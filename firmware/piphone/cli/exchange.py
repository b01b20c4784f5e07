"""`piphone exchange`: serve the local exchange (its options and its administrator's actions,
--init-config, --init-tls and the phones' keys, are in piphone/cli_exchange.py)."""

from __future__ import annotations

import argparse
import asyncio
import ssl
from typing import TYPE_CHECKING

from ..errors import PiphoneError
from .common import Subparsers, until_signal

if TYPE_CHECKING:
    from ..exchange.config import ExchangeConfig


def add_parser(sub: Subparsers) -> None:
    from .. import cli_exchange

    cli_exchange.add_parser(sub, cmd_exchange)


def cmd_exchange(args: argparse.Namespace) -> int:
    from .. import cli_exchange
    from ..exchange import config as exchange_config
    from ..exchange.tls import refuse_plaintext

    if args.init_config is not None:
        return cli_exchange.init_config(args)
    if args.action is not None or args.init_tls:
        return cli_exchange.admin(args)
    if args.config is None:
        raise PiphoneError("exchange needs --config FILE (or --init-config FILE to make one)")
    cfg = exchange_config.load(args.config)
    tls = cli_exchange.server_tls(cfg, args.tls_cert, args.tls_key)  # the config's by default
    refuse_plaintext(args.host or cfg.host, tls is not None,
                     args.allow_plaintext or cfg.allow_plaintext)
    return asyncio.run(_serve_exchange(cfg, args.host, args.port, tls))


async def _serve_exchange(cfg: ExchangeConfig, host: str | None, port: int | None,
                          tls: ssl.SSLContext | None) -> int:
    from ..exchange.server import Exchange
    from ..systemd import Notifier, feed_watchdog, watchdog_interval

    exchange = Exchange(cfg)
    await exchange.start(host=host, port=port, ssl_context=tls)
    stop = asyncio.ensure_future(until_signal())
    await asyncio.sleep(0)  # SIGTERM handled before anyone is told we serve
    print(f"piphone exchange serving {exchange.url}", flush=True)
    notifier = Notifier()  # under systemd (piphone-exchange.service): ready, and alive
    notifier.send(f"READY=1\nSTATUS=serving {exchange.url}")
    interval = watchdog_interval()
    watchdog = (asyncio.ensure_future(feed_watchdog(notifier, interval))
                if interval is not None else None)
    try:
        await stop
    finally:
        notifier.send("STOPPING=1")
        if watchdog is not None:
            watchdog.cancel()
        await exchange.close()
    return 0
