"""Invisible watermark (keyed, error-corrected, robust) and C2PA provenance for studio outputs."""

