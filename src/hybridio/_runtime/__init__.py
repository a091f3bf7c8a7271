"""The Runtime, its registry of backends, and the module-level API built on them."""
