"""One module per measurement; each exposes `run(ctx) -> list[Row | Series]`."""
