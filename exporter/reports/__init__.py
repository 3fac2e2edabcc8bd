"""Words at the edges: the engine's facts (explanations, plans) as text for people and JSON for
tools, in one place shared by the CLI commands and the web page. No I/O, no clock."""
