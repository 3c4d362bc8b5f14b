"""`simcore demo`: the whole group on replayed real weather, with a local cloud, a live view and a summary."""
