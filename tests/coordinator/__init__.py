"""Tests of the coordinator package."""
