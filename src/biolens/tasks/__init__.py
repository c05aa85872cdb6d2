"""The jobs a user asks for: each is `task(data, out=..., **options) -> Run`."""
