"""scripts/bench's harness: workers and in-process rows (micro), servers and
HTTP rows (http), the machine-load sampler (load), the table (table)."""
