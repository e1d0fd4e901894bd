"""Corpora, BERT pre-training instances, memmap shards, task datasets and batches."""
