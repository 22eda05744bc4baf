"""Pure analytics over the store's read results; `now` is always a parameter."""
