"""The edit's domain: its data, its allowed state changes and its errors (no I/O here)."""
