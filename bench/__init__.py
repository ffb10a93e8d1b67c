"""Benchmarks of the podcast recommender: latency, throughput, recall, ingest and scale."""
