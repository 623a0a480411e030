"""Analysis of hostmem LTTng traces: reader (bt2) -> model -> summary, report, diff."""
