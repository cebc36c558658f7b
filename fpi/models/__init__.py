"""The bundled default model (LightGBM text plus metadata.json)."""
