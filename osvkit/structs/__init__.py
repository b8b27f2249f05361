"""construct schemas for the binary formats osvkit reads and writes."""
