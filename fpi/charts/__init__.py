"""Report charts: one function per chart, each `(df, *, ax=None) -> Axes`."""
