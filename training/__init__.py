"""msanii-daw training side: models, data, losses, trainer and the `msanii-train` CLI."""
