"""Model adapters: one small interface per role, chosen by a model spec in the config."""
