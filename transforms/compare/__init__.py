"""The comparison job's stages (pipeline.compare), one PTransform a module."""
