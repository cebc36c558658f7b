"""Importers: each turns one source's logs into `fpi-trace/1` records (contract: `base`)."""
