"""Alert rules as data: the default rule file, its loader, the rule kinds and the engine."""
