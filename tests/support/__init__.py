"""Helpers the tests share: waiting, recorders, the stand-in cloud and AWS fixtures, work sources."""
