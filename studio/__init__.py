"""Avatar Studio: the product layer (config, media I/O, ledger, pipeline, CLI, web app)."""

