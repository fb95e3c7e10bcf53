"""Benchmarks: accuracy and speed on real data (``facesearch bench ...``)."""
