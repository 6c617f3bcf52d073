"""The GNU Radio blocks, one per file, the helpers they run (batching,
truth_switch, display_widget) and the tags and messages they exchange (schema)."""
