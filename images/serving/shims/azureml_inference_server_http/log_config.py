"""tug's stand-in for `azureml_inference_server_http.log_config`.

azmlinfsrv loads a `logging.json` found in AML_APP_ROOT (or next to the entry script) with
`logging.config.dictConfig`; such files, copied from azmlinfsrv's own, name the formatter and
filter classes below, so they must be importable under this module name.
"""

import logging
import time


class RootAccessFilter(logging.Filter):
    """Drops access-log lines for the health probe (`GET /`)."""

    def filter(self, record):
        return "GET / HTTP/1.1" not in record.getMessage()


class AMLLogFormatter(logging.Formatter):
    """azmlinfsrv's log line: `<UTC time> <level letter> [<pid>] <logger> - <message>`."""

    def __init__(self, fmt="%(asctime)s %(levelname).1s [%(process)d] %(name)s - %(message)s",
                 datefmt=None, style="%"):
        super().__init__(fmt=fmt, datefmt=datefmt, style=style)
        self.converter = time.gmtime
