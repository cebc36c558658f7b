"""fpi: failure-point isolation for voice-assistant pipeline traces."""

__version__ = "0.1.0"
