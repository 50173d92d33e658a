"""``boorugan play``: a local page to draw from, compare and walk every trained model."""
