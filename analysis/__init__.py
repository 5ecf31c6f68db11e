"""Analysis reads run folders (config, metrics, transcripts, summaries) and never changes them."""
