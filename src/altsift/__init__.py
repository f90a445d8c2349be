"""altsift: score web image-text pairs once, select many times, export DataComp-compatible subsets."""

__version__ = "0.1.0"
