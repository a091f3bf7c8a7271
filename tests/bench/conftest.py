"""The bench runs its own event loops (anyio.run) from synchronous code: no anyio backend here."""
