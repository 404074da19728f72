"""The write path: the one render entry point, its receipt and the render farm."""
