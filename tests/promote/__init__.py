"""Tests of the promote package."""
