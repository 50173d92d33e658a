"""GAN architectures. ``models.registry`` maps ``arch`` names to builders; no training loop here."""
