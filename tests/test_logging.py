"""Structured logs: one JSON object per line, with the extra fields a log call passes."""

from __future__ import annotations

import json
import logging

from opsdesk.core.logging import JsonFormatter, configure_logging


def test_auto_format_is_json_when_stderr_is_not_a_terminal(capsys):
    configure_logging("INFO", "auto")
    try:
        logging.getLogger("opsdesk.test").info(
            "monitor state changed", extra={"monitor": "shop", "to": "down"}
        )
        line = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        logging.getLogger().handlers.clear()
    record = json.loads(line)
    assert record["msg"] == "monitor state changed" and record["monitor"] == "shop" and record["to"] == "down"
    assert record["level"] == "info" and record["logger"] == "opsdesk.test" and "ts" in record


def test_exceptions_are_kept_in_one_json_line():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    out = JsonFormatter().format(rec)
    assert "\n" not in out and "ValueError: boom" in json.loads(out)["exc"]
