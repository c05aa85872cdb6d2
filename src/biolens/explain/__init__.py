"""Why a model decided: Grad-CAM for images (attributions for tables and sequences join here)."""
