"""Selection on score tables: thresholds, pool-wide fractions, fusion, presets, caption mixing."""
