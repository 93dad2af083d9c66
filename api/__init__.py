"""The HTTP layer: routers, error rendering and middleware. SQL lives in `crud`, never here."""
