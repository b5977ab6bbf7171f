"""The scoring job's stages (pipeline.run), one PTransform a module, in build_pipeline's order."""
