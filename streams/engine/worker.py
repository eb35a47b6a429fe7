"""Faust's worker without its terminal spinner.

At --loglevel WARNING or above Faust installs the spinner by setting the root logger to
DEBUG, so every debug call in aiokafka and Faust builds a log record only for the handler to
drop it: 14% of the samples in a py-spy profile of a table-writing agent run at WARNING. The
root logger keeps the operator's level instead.
"""

from __future__ import annotations

import logging

import faust


class Worker(faust.Worker):
    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None
