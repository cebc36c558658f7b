"""Feature definitions, one module per pipeline stage (installed as `fpi.features`)."""
