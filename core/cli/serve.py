"""``tinylogbert serve``: run the REST API (``tinylogbert.api.anomaly_routes``) with uvicorn.

Each limit flag overrides its ``TINYLOGBERT_*`` environment variable, which overrides the default
(see ``tinylogbert.api.settings``). The API key is read from ``TINYLOGBERT_API_KEY`` only, never a flag.
Also runnable on its own: ``python -m tinylogbert.cli.serve --model checkpoint``.
"""
from __future__ import annotations

import argparse
import ipaddress
import sys

from tinylogbert.api.settings import API_KEY_ENV, ApiSettings, cli_settings
from tinylogbert.cli.log_output import LOG_FORMATS, emit, set_log_format, uvicorn_log_config
from tinylogbert.errors import TinyLogBERTError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="DIR",
                   help="checkpoint folder (env TINYLOGBERT_MODEL; default: checkpoint/)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--log-level", default="info",
                   choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--log-format", choices=LOG_FORMATS, default="text",
                   help="uvicorn's and the service's log on stderr: text, or one JSON object "
                        "per line (default text)")
    for name, env, help_text, type_name in cli_settings():
        if type_name == "bool":  # default None: the environment (or the default) decides
            p.add_argument(f"--{name.replace('_', '-')}", action="store_true", default=None,
                           help=f"{help_text} (env {env}=1)")
        else:
            p.add_argument(f"--{name.replace('_', '-')}", type=int, metavar="N",
                           help=f"{help_text} (env {env})")
    from tinylogbert.cli.serve_live import add_live_arguments

    add_live_arguments(p)


def register(subparsers) -> None:
    """Add ``serve`` to the ``tinylogbert`` command (see ``EXTRA_COMMAND_MODULES``)."""
    p = subparsers.add_parser("serve", help="run the REST API (docs at /docs)")
    add_arguments(p)
    p.set_defaults(func=cmd_serve)


def settings_from_args(args: argparse.Namespace) -> ApiSettings:
    overrides = {name: getattr(args, name) for name, *_ in cli_settings()}
    return ApiSettings.from_env().with_overrides(model_dir=args.model, **overrides)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn
    from tinylogbert.api.anomaly_routes import create_app

    set_log_format(args.log_format)
    settings = settings_from_args(args)
    from tinylogbert.cli.serve_live import live_settings_from_args

    app = create_app(settings=settings, live=live_settings_from_args(args))  # loads the model once, before listening
    resumed = getattr(app.state, "live_resumed", None)
    if resumed is not None and any(resumed):
        emit(f"live ingestion resumed from {args.state}: the open sessions of "
             f"{resumed[0]:,} stream(s) restored, {resumed[1]:,} logged batch(es) replayed",
             streams=resumed[0], replayed=resumed[1])
    if not settings.api_key and not _is_loopback(args.host):
        emit(f"listening on {args.host} without an API key; set {API_KEY_ENV} to require one",
             "warning", "warning: ")
    emit(f"starting the API for {settings.model_dir} on http://{args.host}:{args.port} "
         f"(docs: http://{args.host}:{args.port}/docs)")
    log_config = ({"log_config": uvicorn_log_config(args.log_level)}
                  if args.log_format == "json" else {})
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, workers=1,
                **log_config)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinylogbert.cli.serve", description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return cmd_serve(args)
    except TinyLogBERTError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
