"""Exporter errors, each with its CLI exit code.

ExportError            exit 3: bad source, unwritable repository, exporter crash
└── ValidationError    exit 1: the exported graph does not match the reference model
"""

from __future__ import annotations


class ExportError(Exception):
    """Something stopped the export; nothing was published."""

    exit_code = 3


class ValidationError(ExportError):
    """The exported or quantised graph is outside its parity bounds; nothing was published."""

    exit_code = 1
