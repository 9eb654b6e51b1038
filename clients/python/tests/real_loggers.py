"""Used by tests/it/formats.rs: one real Python logger, configured as its docs show, writing
JSON straight into the daemon's socket (or through this package's handler).

    python3 real_loggers.py SOCKET jsonlogger|structlog|structlog-dict|handler|ecs|otel
"""
import logging
import os
import socket
import sys

sock_path, which = sys.argv[1], sys.argv[2]


def sockfile():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    return s.makefile("w", encoding="utf-8")


def fail():
    raise ZeroDivisionError("division by zero")


if which == "jsonlogger":
    from pythonjsonlogger.json import JsonFormatter

    f = sockfile()
    handler = logging.StreamHandler(f)
    handler.setFormatter(JsonFormatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    log = logging.getLogger("billing.jsonlogger")
    log.addHandler(handler)
    try:
        fail()
    except ZeroDivisionError:
        log.exception("jsonlogger invoice failed")
    log.warning("jsonlogger just a warning")
    handler.flush()
    f.close()
elif which in ("structlog", "structlog-dict"):
    import structlog

    f = sockfile()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.dict_tracebacks
            if which == "structlog-dict"
            else structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.WriteLoggerFactory(file=f),
    )
    log = structlog.get_logger()
    try:
        fail()
    except ZeroDivisionError:
        log.exception(f"{which} payment failed", order=42)
    log.critical(f"{which} on fire")
    f.close()
elif which == "handler":
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    from qerrors_client import QerrorsHandler

    h = QerrorsHandler(socket_path=sock_path, service="py-handler")
    log = logging.getLogger("app.handler")
    log.addHandler(h)
    try:
        fail()
    except ZeroDivisionError:
        log.exception("handler charge failed", extra={"invoice": 7})
    log.critical("handler on fire")
    h.close(timeout=5.0)
elif which == "ecs":
    import ecs_logging

    f = sockfile()
    handler = logging.StreamHandler(f)
    handler.setFormatter(ecs_logging.StdlibFormatter())
    log = logging.getLogger("billing.ecs")
    log.addHandler(handler)
    try:
        fail()
    except ZeroDivisionError:
        log.exception("ecs invoice failed", extra={"order": 42})
    log.warning("ecs just a warning")
    handler.flush()
    f.close()
elif which == "otel":
    # The OpenTelemetry SDK's own JSON (`LogRecord.to_json`), one record per line.
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs import export as otel_export
    from opentelemetry.sdk.resources import Resource

    exporter = getattr(otel_export, "ConsoleLogRecordExporter", None) or otel_export.ConsoleLogExporter
    f = sockfile()
    provider = LoggerProvider(resource=Resource.create({"service.name": "billing-otel"}))
    provider.add_log_record_processor(
        otel_export.SimpleLogRecordProcessor(
            exporter(out=f, formatter=lambda r: r.to_json(indent=None) + "\n")
        )
    )
    log = logging.getLogger("billing.otel")
    log.propagate = False
    log.addHandler(LoggingHandler(logger_provider=provider))
    try:
        # Secrets in the exception's message and in an attribute must not reach the log.
        raise ValueError("charge refused for api_key=otelsecret1234567890")
    except ValueError:
        log.exception("otel invoice failed", extra={"db.password": "otelhunter2"})
    log.warning("otel just a warning")
    provider.shutdown()
    f.close()
elif which == "otlp":
    # OTLP/JSON as an OTLP/HTTP JSON exporter sends it: the SDK's records, encoded by the
    # exporters' own encoder (opentelemetry-exporter-otlp-proto-common) into an
    # ExportLogsServiceRequest, rendered by protobuf's JSON mapping with integer enums
    # (as the OTLP/JSON spec asks): one line, `resourceLogs → scopeLogs → logRecords`.
    from google.protobuf.json_format import MessageToJson
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs import export as otel_export
    from opentelemetry.sdk.resources import Resource

    exporter = getattr(otel_export, "InMemoryLogRecordExporter", None) or otel_export.InMemoryLogExporter
    collect = exporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "billing-otlp"}))
    provider.add_log_record_processor(otel_export.SimpleLogRecordProcessor(collect))
    log = logging.getLogger("billing.otlp")
    log.propagate = False
    log.addHandler(LoggingHandler(logger_provider=provider))
    try:
        raise KeyError("otlp lookup failed for token=otlpsecret1234567890")
    except KeyError:
        log.exception("otlp invoice failed", extra={"db.password": "otlphunter2"})
    log.warning("otlp just a warning")
    provider.shutdown()
    batch = (getattr(collect, "get_finished_logs", None) or collect.get_finished_log_records)()
    line = MessageToJson(encode_logs(batch), use_integers_for_enums=True, indent=None)
    f = sockfile()
    f.write(line + "\n")
    f.close()
else:
    sys.exit(f"unknown logger {which}")
