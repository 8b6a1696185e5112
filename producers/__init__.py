"""Producers: system metrics, HTTP probes, push API, scraping; all send `SampleBatch`es through one sender."""
