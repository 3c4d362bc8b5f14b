"""Tiny Lambdas and helpers for simcore's IPC, router, worker and SDK compatibility tests."""
