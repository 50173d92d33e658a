"""``boorugan label``: a local page to check and fix face labels, saved to ``labels/manual.csv``."""
